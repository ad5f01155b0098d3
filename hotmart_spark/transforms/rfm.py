"""Q3: buyer recency, frequency and monetary value, scored 1-5 and named by segment."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.shares import with_shares

QUINTILES = [0.2, 0.4, 0.6, 0.8]
UNSEGMENTED = "Other"


def reference_day(purchases: DataFrame) -> dt.date:
    """The day after the last purchase day in the data."""
    last = purchases.agg(F.max(F.to_date(s.PURCHASE_DATE))).first()[0]
    return last + dt.timedelta(days=1)


def buyer_rfm(purchases: DataFrame, reference: dt.date) -> DataFrame:
    """One row per buyer: recency (days from the last purchase day to reference, >= 1),
    frequency (purchases; clean purchase_ids are unique) and monetary (sum of value)."""
    return purchases.groupBy(s.BUYER_ID).agg(
        F.datediff(F.lit(reference), F.max(F.to_date(s.PURCHASE_DATE))).alias("recency"),
        F.count(F.lit(1)).alias("frequency"),
        F.sum("value").alias("monetary"),
    )


def quintile_cuts(rfm: DataFrame) -> dict[str, list[float]]:
    """The 20/40/60/80% cut points of recency, frequency and monetary (percentile_approx)."""
    row = rfm.agg(
        *[
            F.percentile_approx(c, QUINTILES, 10_000).alias(c)
            for c in ("recency", "frequency", "monetary")
        ]
    ).first()
    return {c: [float(x) for x in row[c]] for c in ("recency", "frequency", "monetary")}


def score(col: str, cuts: list[float], higher_is_better: bool = True) -> Column:
    """1 + the number of cut points the value is strictly beyond.

    Equal values always share a score. With heavy ties (most buyers buy once, so several
    frequency cuts equal 1) a one-time buyer passes no cut and scores 1 while any repeat
    buyer passes all the tied cuts and scores 4 or 5: the score still separates them.
    Recency is inverted: beyond means more recent (fewer days).
    """
    passed = [
        (F.col(col) > cut if higher_is_better else F.col(col) < cut).cast("int") for cut in cuts
    ]
    return (F.lit(1) + sum(passed[1:], passed[0])).cast("int")


def with_scores(rfm: DataFrame, cuts: Mapping[str, list[float]]) -> DataFrame:
    return (
        rfm.withColumn("r_score", score("recency", cuts["recency"], higher_is_better=False))
        .withColumn("f_score", score("frequency", cuts["frequency"]))
        .withColumn("m_score", score("monetary", cuts["monetary"]))
    )


def segment_names(segments: Mapping[str, str]) -> dict[int, str]:
    """Each of the 25 codes (10 * r_score + f_score) and the first segment whose pattern
    matches its "<r_score><f_score>" text (UNSEGMENTED where none does)."""
    return {
        10 * r + f: next(
            (name for name, pattern in segments.items() if re.fullmatch(pattern, f"{r}{f}")),
            UNSEGMENTED,
        )
        for r in range(1, 6)
        for f in range(1, 6)
    }


def segment(segments: Mapping[str, str]) -> Column:
    """The buyer's segment, looked up by its scores' code in `segment_names`."""
    # The patterns are matched once per code here, not once per buyer: up to one regular
    # expression per segment on every buyer's row took a third of the scored table's time.
    names = segment_names(segments)
    lookup = F.create_map(*[F.lit(x) for code, name in names.items() for x in (code, name)])
    return lookup[F.col("r_score") * 10 + F.col("f_score")]


def segment_summary(scored: DataFrame, purchases: DataFrame, top_categories: int = 3) -> DataFrame:
    """Per segment: buyers, buyer and value shares, mean R/F/M and the top categories by value."""
    per_segment = scored.groupBy("segment").agg(
        F.count(F.lit(1)).alias("buyers"),
        F.sum("monetary").alias("value"),
        F.avg("recency").alias("mean_recency"),
        F.avg("frequency").alias("mean_frequency"),
        F.avg("monetary").alias("mean_monetary"),
    )
    categories = (
        purchases.join(scored.select(s.BUYER_ID, "segment"), s.BUYER_ID)
        .groupBy("segment", s.PRODUCT_CATEGORY)
        .agg(F.sum("value").alias("category_value"))
        .withColumn(
            "place",
            F.row_number().over(
                Window.partitionBy("segment").orderBy(F.desc("category_value"), s.PRODUCT_CATEGORY)
            ),
        )
        .where(F.col("place") <= top_categories)
        .groupBy("segment")
        .agg(F.array_sort(F.collect_list(F.struct("place", s.PRODUCT_CATEGORY))).alias("_top"))
        .select("segment", F.col(f"_top.{s.PRODUCT_CATEGORY}").alias("top_categories"))
    )
    shared = with_shares(per_segment, {"buyers": "buyer_share", "value": "value_share"})
    return shared.join(categories, "segment", "left")
