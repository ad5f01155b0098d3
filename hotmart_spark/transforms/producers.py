"""Q1: how much the platform depends on its biggest producers, and on affiliates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.ranking import concentration, rank_desc
from hotmart_spark.transforms.shares import with_shares

PARETO_POINTS = 1000


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


def monthly_concentration(purchases: DataFrame) -> DataFrame:
    """Per month: the concentration of producer revenue among that month's producers."""
    per_month = purchases.groupBy(s.PURCHASE_MONTH, s.PRODUCER_ID).agg(
        F.sum("value").alias("revenue")
    )
    ranked = rank_desc(per_month, "revenue", s.PRODUCER_ID, group_by=[s.PURCHASE_MONTH])
    return concentration(ranked, "revenue", group_by=[s.PURCHASE_MONTH]).withColumnRenamed(
        s.PURCHASE_MONTH, "month"
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
