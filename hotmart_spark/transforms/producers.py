"""Q1: how much the platform depends on its biggest producers, and on affiliates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.ranking import concentration, rank_desc, top_cut
from hotmart_spark.transforms.shares import with_shares

PARETO_POINTS = 1000
# Persistence follows the top 5%, the share the report's headline names.
PERSISTENCE_TOP_SHARE = 0.05


def is_affiliate_sale() -> Column:
    """A sale through an affiliate: the affiliate is not the producer (DESIGN's business rule)."""
    return F.col(s.AFFILIATE_ID) != F.col(s.PRODUCER_ID)


def distinct_count(col: str | Column) -> Column:
    """Exact distinct count inside a multi-measure aggregate.

    Several countDistinct in one aggregate make Spark copy every row once per measure;
    a set per group is built in the same pass instead.
    """
    return F.size(F.collect_set(col))


def producer_measures() -> list[Column]:
    """The measures of marts/producers, for an aggregate by producer_id."""
    day = F.to_date(s.PURCHASE_DATE)
    return [
        F.count(F.lit(1)).alias("units"),
        F.sum("value").alias("revenue"),
        F.sum("platform_revenue").alias("platform_revenue"),
        distinct_count(s.PRODUCT_ID).alias("products"),
        distinct_count(F.when(is_affiliate_sale(), F.col(s.AFFILIATE_ID))).alias("affiliates"),
        distinct_count(s.BUYER_ID).alias("buyers"),
        F.min(day).alias("first_sale_day"),
        F.max(day).alias("last_sale_day"),
        F.avg(is_affiliate_sale().cast("double")).alias("affiliate_units_share"),
        F.avg("value").alias("avg_value_per_sale"),
        distinct_count(s.PURCHASE_MONTH).alias("months_active"),
    ]


def producer_table(purchases: DataFrame) -> DataFrame:
    """marts/producers: one row per producer with its sales, reach and activity."""
    return purchases.groupBy(s.PRODUCER_ID).agg(*producer_measures())


def top_by_units_rule(producers: DataFrame, p95_units: float) -> DataFrame:
    """The case's own rule: producers whose units are strictly above the 95th percentile."""
    return producers.withColumn("is_top", F.col("units") > p95_units)


def p95_units(producers: DataFrame) -> float:
    """95th percentile of producer units (relative error 1/10,000)."""
    return float(producers.agg(F.percentile_approx("units", 0.95, 10_000)).first()[0])


def pareto_curve(ranked: DataFrame, n: int, total: float) -> DataFrame:
    """At most PARETO_POINTS points (producer share from the top, revenue share), plus (0, 0)."""
    step = max(1, -(-n // PARETO_POINTS))
    points = ranked.where((F.col("rank") % step == 0) | (F.col("rank") == n)).select(
        (F.col("rank") / n).alias("producer_share"),
        (F.col("cum_value") / total).alias("revenue_share"),
    )
    origin = ranked.sparkSession.createDataFrame([(0.0, 0.0)], points.schema)
    return origin.unionByName(points)


def monthly_ranked(purchases: DataFrame) -> DataFrame:
    """Per month and producer: revenue and `rank` among that month's producers."""
    per_month = purchases.groupBy(s.PURCHASE_MONTH, s.PRODUCER_ID).agg(
        F.sum("value").alias("revenue")
    )
    return rank_desc(per_month, "revenue", s.PRODUCER_ID, group_by=[s.PURCHASE_MONTH])


def monthly_concentration(ranked_by_month: DataFrame) -> DataFrame:
    """Per month: the concentration of producer revenue among that month's producers."""
    return concentration(ranked_by_month, "revenue", group_by=[s.PURCHASE_MONTH]).withColumnRenamed(
        s.PURCHASE_MONTH, "month"
    )


def top_persistence(ranked_by_month: DataFrame, k: float = PERSISTENCE_TOP_SHARE) -> DataFrame:
    """Per month after a month with sales: how many of the previous month's top k% of
    producers by revenue are in this month's top k%, and the share of this month's revenue
    they made. `chance` is the share a random pick of this month's producers would keep."""
    sizes = ranked_by_month.groupBy(s.PURCHASE_MONTH).agg(F.max("rank").alias("_producers"))
    with_top = ranked_by_month.join(F.broadcast(sizes), s.PURCHASE_MONTH).withColumn(
        "is_top", F.col("rank") <= top_cut(F.col("_producers"), k)
    )
    next_month = F.date_format(F.add_months(F.to_date(s.PURCHASE_MONTH, "yyyy-MM"), 1), "yyyy-MM")
    previous_top = with_top.where("is_top").select(
        next_month.alias(s.PURCHASE_MONTH),
        F.col(s.PURCHASE_MONTH).alias("previous_month"),
        s.PRODUCER_ID,
    )
    # Inner join on the month: the first month, and a month after a month without sales,
    # have no previous top to follow.
    top_before = previous_top.groupBy(s.PURCHASE_MONTH, "previous_month").agg(
        F.count(F.lit(1)).alias("top_previous")
    )
    followed = (
        with_top.join(
            previous_top.withColumn("was_top", F.lit(True)).drop("previous_month"),
            [s.PURCHASE_MONTH, s.PRODUCER_ID],
            "left",
        )
        .groupBy(s.PURCHASE_MONTH)
        .agg(
            F.count(F.lit(1)).alias("producers"),
            F.sum(F.col("is_top").cast("long")).alias("top_now"),
            F.sum(F.when(F.col("was_top") & F.col("is_top"), 1).otherwise(0)).alias("stayed_top"),
            (
                F.sum(F.when(F.col("was_top"), F.col("revenue")).otherwise(0.0)) / F.sum("revenue")
            ).alias("previous_top_value_share"),
        )
    )
    return followed.join(F.broadcast(top_before), s.PURCHASE_MONTH).select(
        F.col(s.PURCHASE_MONTH).alias("month"),
        "previous_month",
        "top_previous",
        "stayed_top",
        (F.col("stayed_top") / F.col("top_previous")).alias("persistence"),
        "top_now",
        "producers",
        (F.col("top_now") / F.col("producers")).alias("chance"),
        "previous_top_value_share",
    )


def channel_table(purchases: DataFrame) -> DataFrame:
    """Affiliate versus direct sales: units, value, their shares and the mean commission."""
    channel = F.when(is_affiliate_sale(), F.lit("affiliate")).otherwise(F.lit("direct"))
    grouped = purchases.groupBy(channel.alias("channel")).agg(
        F.count(F.lit(1)).alias("units"),
        F.sum("value").alias("value"),
        F.avg(s.COMMISSION).alias("mean_commission"),
        F.sum(F.col("value") * F.col(s.COMMISSION) / 100.0).alias("commission_value"),
    )
    return with_shares(grouped, {"units": "units_share", "value": "value_share"})


def affiliate_table(purchases: DataFrame) -> DataFrame:
    """One row per affiliate (sales through affiliates only): units, value, commission earned."""
    return (
        purchases.where(is_affiliate_sale())
        .groupBy(s.AFFILIATE_ID)
        .agg(
            F.count(F.lit(1)).alias("units"),
            F.sum("value").alias("revenue"),
            F.sum(F.col("value") * F.col(s.COMMISSION) / 100.0).alias("commission_value"),
            distinct_count(s.PRODUCER_ID).alias("producers"),
        )
    )
