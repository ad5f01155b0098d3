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
    bucket: Column = F.lit(0)
    # Bucket 0 holds the largest values.
    for i, cut in enumerate(sorted(set(cuts or []))):
        bucket = F.when(F.col(value) < cut, F.lit(i + 1)).otherwise(bucket)
    groups = list(group_by)
    within = Window.partitionBy(*groups, "_bucket").orderBy(F.desc(value), F.asc(key))
    local = (
        df.withColumn("_bucket", bucket)
        .withColumn("_local_rank", F.row_number().over(within))
        .withColumn(
            "_local_cum", F.sum(value).over(within.rowsBetween(Window.unboundedPreceding, 0))
        )
    )
    totals = (
        local.groupBy(*groups, "_bucket")
        .agg(F.count(F.lit(1)).alias("_n"), F.sum(value).alias("_v"))
        .alias("totals")
    )
    # Each bucket's offset sums the buckets above it in its group: a join of the small totals
    # table (at most `buckets` rows per group) with itself. A running-sum window without
    # groups would have no partition key (the optimizer drops a constant one), and Spark warns
    # on every such window of moving all data to one partition.
    above = F.broadcast(
        totals.select(*groups, F.col("_bucket").alias("_above"), "_n", "_v").alias("above")
    )
    same_group = [F.col(f"totals.{g}").eqNullSafe(F.col(f"above.{g}")) for g in groups]
    offsets = (
        totals.join(above, [*same_group, F.col("above._above") < F.col("totals._bucket")], "left")
        .groupBy(*[F.col(f"totals.{g}").alias(g) for g in groups], F.col("totals._bucket"))
        .agg(
            F.coalesce(F.sum("above._n"), F.lit(0)).alias("_rank_offset"),
            F.coalesce(F.sum("above._v"), F.lit(0.0)).alias("_value_offset"),
        )
    )
    return (
        local.join(F.broadcast(offsets), [*groups, "_bucket"])
        .withColumn("rank", (F.col("_rank_offset") + F.col("_local_rank")).cast("long"))
        .withColumn("cum_value", F.col("_value_offset") + F.col("_local_cum"))
        .drop("_bucket", "_local_rank", "_local_cum", "_rank_offset", "_value_offset")
    )


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
        F.sum(F.when(j <= F.ceil(n * k - CEIL_SLACK), x).otherwise(0.0)).alias(top_share_column(k))
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
        ((((n + 1) * total) - 2 * F.col("_rank_weighted")) / (n * total)).alias("gini"),
        (F.col("_squares") / (total * total)).alias("hhi"),
        *[(F.col(c) / total).alias(c) for c in share_columns],
    )


def top_share_column(k: float) -> str:
    """Column name of the top k share: 0.05 -> top_5pct."""
    return f"top_{k * 100:g}pct"


def top_count(n: int, k: float) -> int:
    """How many of n producers the top k share holds: ceil(k * n), as `concentration` counts."""
    return math.ceil(n * k - CEIL_SLACK)
