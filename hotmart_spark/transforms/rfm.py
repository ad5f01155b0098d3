"""Q3: buyer recency, frequency and monetary value, scored 1-5 and named by segment."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.shares import with_shares

QUINTILES = [0.2, 0.4, 0.6, 0.8]
UNSEGMENTED = "Other"
# A category below this share of a segment's purchases is not named for it, whatever its
# lift: a high ratio of tiny shares is noise.
MIN_CATEGORY_SHARE = 0.02


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


def recency_cuts(rfm: DataFrame) -> list[float]:
    """The 20/40/60/80% cut points of recency in days (percentile_approx)."""
    return [float(x) for x in rfm.agg(F.percentile_approx("recency", QUINTILES, 10_000)).first()[0]]


def recency_score(cuts: Sequence[float]) -> Column:
    """1 + the number of cut points the buyer's recency is more recent than (fewer days):
    5 for the most recent fifth. Equal recencies share a score."""
    return one_plus_met([F.col("recency") < cut for cut in cuts])


def frequency_score(tiers: Sequence[int]) -> Column:
    """1 for one purchase, then 1 + the number of tiers (purchase counts) reached.

    Quintile cuts would not separate: when most buyers buy once, several cuts equal 1, so a
    one-time buyer scores 1, every repeat buyer 4 or 5, and scores 2 and 3 (and the segments
    named by them) stay empty by construction.
    """
    return one_plus_met([F.col("frequency") >= tier for tier in tiers])


def one_plus_met(conditions: Sequence[Column]) -> Column:
    """A score: 1 + how many of the conditions hold."""
    return (F.lit(1) + sum((c.cast("int") for c in conditions), F.lit(0))).cast("int")


def with_scores(rfm: DataFrame, cuts: Sequence[float], tiers: Sequence[int]) -> DataFrame:
    """r_score and f_score, 1 to 5. Monetary is not scored: the segments are named by R and
    F, and monetary is mostly frequency times price (in relative units, a price shifted by
    the unknown lowest one), so a score of it would rank buyers by F again."""
    return rfm.withColumn("r_score", recency_score(cuts)).withColumn(
        "f_score", frequency_score(tiers)
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


def segment_summary(scored: DataFrame) -> DataFrame:
    """Per segment: buyers, buyer and value shares, mean recency, frequency and monetary."""
    per_segment = scored.groupBy("segment").agg(
        F.count(F.lit(1)).alias("buyers"),
        F.sum("monetary").alias("value"),
        F.avg("recency").alias("mean_recency"),
        F.avg("frequency").alias("mean_frequency"),
        F.avg("monetary").alias("mean_monetary"),
    )
    return with_shares(per_segment, {"buyers": "buyer_share", "value": "value_share"})


def segment_categories(scored: DataFrame, purchases: DataFrame) -> DataFrame:
    """Per segment and category: the category's share of the segment's purchases, its share
    of all purchases, and their ratio, the lift (above 1: the segment buys it more than
    buyers overall). Units, not value: in relative units a share of value is not a share of
    money, and every segment would show the categories that are large overall."""
    counted = (
        purchases.select(s.BUYER_ID, s.PRODUCT_CATEGORY)
        .join(scored.select(s.BUYER_ID, "segment"), s.BUYER_ID)
        .groupBy("segment", s.PRODUCT_CATEGORY)
        .agg(F.count(F.lit(1)).alias("units"))
    )
    segment_units = Window.partitionBy("segment")
    category_units = Window.partitionBy(s.PRODUCT_CATEGORY)
    # The table is segments x categories; the overall total is a sum over its rows.
    overall = counted.agg(F.sum("units").alias("_all"))
    return (
        counted.crossJoin(F.broadcast(overall))
        .withColumn("share", F.col("units") / F.sum("units").over(segment_units))
        .withColumn("overall_share", F.sum("units").over(category_units) / F.col("_all"))
        .withColumn("lift", F.col("share") / F.col("overall_share"))
        .drop("_all")
    )


def top_by_lift(categories: DataFrame, top: int = 3) -> DataFrame:
    """Per segment, its `top` categories by lift among those with at least
    MIN_CATEGORY_SHARE of its purchases: what sets the segment apart, not what is large."""
    place = Window.partitionBy("segment").orderBy(F.desc("lift"), s.PRODUCT_CATEGORY)
    return (
        categories.where(F.col("share") >= MIN_CATEGORY_SHARE)
        .withColumn("place", F.row_number().over(place))
        .where(F.col("place") <= top)
        .groupBy("segment")
        .agg(
            F.array_sort(F.collect_list(F.struct("place", s.PRODUCT_CATEGORY, "lift"))).alias("_t")
        )
        .select(
            "segment",
            F.col(f"_t.{s.PRODUCT_CATEGORY}").alias("top_categories"),
            F.col("_t.lift").alias("top_category_lifts"),
        )
    )
