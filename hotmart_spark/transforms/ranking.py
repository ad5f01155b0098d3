"""Ranks, running sums and concentration of a value without a window over all rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

TOP_SHARES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2)
TOP_COUNTS: tuple[int, ...] = (1, 5, 10, 50)
# k * n computed in floating point can land a hair above a whole number (0.07 * 100).
CEIL_SLACK = 1e-9


def rank_desc(
    df: DataFrame, value: str, key: str, group_by: Sequence[str] = (), buckets: int = 64
) -> DataFrame:
    """Adds `rank` (1 = largest value in its group, ties by key) and `cum_value` (running sum).

    Rows go to buckets by approximate quantiles of the value, so equal values share a
    bucket; ranks and running sums are taken within (group, bucket) and shifted by the
    totals of the buckets above, a table of at most `buckets` rows per group.
    """
    cuts = df.agg(
        F.percentile_approx(value, [i / buckets for i in range(1, buckets)], 10_000)
    ).first()[0]
    groups = list(group_by)
    within = Window.partitionBy(*groups, "_bucket").orderBy(F.desc(value), F.asc(key))
    local = (
        df.withColumn("_bucket", value_bucket(F.col(value), cuts or []))
        .withColumn("_local_rank", F.row_number().over(within))
        .withColumn(
            "_local_cum", F.sum(value).over(within.rowsBetween(Window.unboundedPreceding, 0))
        )
    )
    totals = local.groupBy(*groups, "_bucket").agg(
        F.count(F.lit(1)).alias("_n"), F.sum(value).alias("_v")
    )
    # Each bucket's offsets are the sums over the buckets above it in its group, summed in
    # bucket order from one sorted array per group (at most `buckets` entries). A running-sum
    # window would need no partition key without groups (the optimizer drops a constant one),
    # and Spark warns on every such window of moving all data to one partition; a self-join
    # of the totals measured slower (a broadcast job of its own per ranking).
    sorted_totals = totals.groupBy(*groups).agg(
        F.array_sort(F.collect_list(F.struct("_bucket", "_n", "_v"))).alias("_totals")
    )

    def sum_above(i: Column, field: str, zero: Column) -> Column:
        return F.aggregate(F.slice("_totals", 1, i), zero, lambda acc, t: acc + t[field])

    offsets = sorted_totals.select(
        *groups,
        F.inline(
            F.transform(
                "_totals",
                lambda t, i: F.struct(
                    t["_bucket"].alias("_bucket"),
                    sum_above(i, "_n", F.lit(0).cast("long")).alias("_rank_offset"),
                    sum_above(i, "_v", F.lit(0.0)).alias("_value_offset"),
                ),
            )
        ),
    )
    return (
        local.join(F.broadcast(offsets), [*groups, "_bucket"])
        .withColumn("rank", (F.col("_rank_offset") + F.col("_local_rank")).cast("long"))
        .withColumn("cum_value", F.col("_value_offset") + F.col("_local_cum"))
        .drop("_bucket", "_local_rank", "_local_cum", "_rank_offset", "_value_offset")
    )


def value_bucket(value: Column, cuts: Sequence[float]) -> Column:
    """The number of cuts above the value: 0 for the largest values, len(cuts) below every
    cut; equal values share a bucket."""
    descending = sorted(set(cuts), reverse=True)
    if not descending:
        return F.lit(0)
    bucket = F.when(value >= descending[0], F.lit(0))
    for above, cut in enumerate(descending[1:], start=1):
        bucket = bucket.when(value >= cut, F.lit(above))
    return bucket.otherwise(F.lit(len(descending)))


def concentration(
    ranked: DataFrame,
    value: str,
    group_by: Sequence[str] = (),
    top_shares: Sequence[float] = TOP_SHARES,
    top_counts: Sequence[int] = TOP_COUNTS,
) -> DataFrame:
    """Per group: n, total, Gini, HHI, share of the top k% (top_<k>pct) and top N (top_n_<N>).

    Takes rows ranked by `rank_desc`. With ranks j = 1..n from the largest value x_j and
    total S, Gini = ((n + 1) S - 2 sum(j x_j)) / (n S): the same number as
    1 - 2 * (trapezoid area under the Lorenz curve with (0, 0) included). HHI = sum((x/S)^2),
    from 0 to 1. The top k% are the first ceil(k * n) by rank.
    """
    groups = list(group_by)
    x, j = F.col(value), F.col("rank")
    sizes = ranked.groupBy(*groups).agg(
        F.max("rank").alias("n"),
        F.sum(value).alias("total"),
        F.sum(j * x).alias("_rank_weighted"),
        F.sum(x * x).alias("_squares"),
    )
    n, total = F.col("n"), F.col("total")
    tops = [
        F.sum(F.when(j <= top_cut(n, k), x).otherwise(0.0)).alias(top_share_column(k))
        for k in top_shares
    ] + [
        F.sum(F.when(j <= count, x).otherwise(0.0)).alias(f"top_n_{count}") for count in top_counts
    ]
    joined = ranked.join(F.broadcast(sizes), groups) if groups else ranked.crossJoin(sizes)
    summed = joined.groupBy(*groups, "n", "total", "_rank_weighted", "_squares").agg(*tops)
    share_columns = [top_share_column(k) for k in top_shares] + [f"top_n_{c}" for c in top_counts]
    return summed.select(
        *groups,
        "n",
        "total",
        gini(n, total, F.col("_rank_weighted")).alias("gini"),
        (F.col("_squares") / (total * total)).alias("hhi"),
        *[(F.col(c) / total).alias(c) for c in share_columns],
    )


def gini(n: Column, total: Column, rank_weighted: Column) -> Column:
    """((n + 1) S - 2 sum(j x_j)) / (n S), from the count, the total and the rank-weighted sum."""
    return ((n + 1) * total - 2 * rank_weighted) / (n * total)


def top_cut(n: Column, k: float) -> Column:
    """The last rank in the top k of n: ceil(k * n), as `top_count` on the driver."""
    return F.ceil(n * k - CEIL_SLACK)


def top_share_column(k: float) -> str:
    """Column name of the top k share: 0.05 -> top_5pct."""
    return f"top_{k * 100:g}pct"


def top_count(n: int, k: float) -> int:
    """How many of n producers the top k share holds: ceil(k * n), as `concentration` counts."""
    return math.ceil(n * k - CEIL_SLACK)
