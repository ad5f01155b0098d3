"""Q4: one row per product with what it sold and the features that might explain it."""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.producers import distinct_count, is_affiliate_sale

# The devices of the data layout (DESIGN.md); a sale from any other device counts in none.
DEVICES = ("Smart TV", "Tablet", "Desktop", "eReaders", "Cellphone")


def device_share_column(device: str) -> str:
    return "device_share_" + re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")


def product_table(
    purchases: DataFrame, period: tuple[dt.date, dt.date], early_sales: int
) -> DataFrame:
    """marts/products: units and revenue per product over the period, what the product is, its
    producer's size without the product itself, how its first `early_sales` sales were made,
    and what the effect estimate reads from its first sale alone (whether it went through an
    affiliate, its value) with its days on sale in the period.

    Mixes and distinct counts over all of a product's sales would leak its volume into the
    features (one sale has one origin and shares of exactly 0 or 1); over the same number of
    first sales they describe the product, not how much it sold.
    """
    day = F.to_date(s.PURCHASE_DATE)
    totals = purchases.groupBy(s.PRODUCT_ID).agg(
        # A product has one producer, category, niche and creation date; max() picks one
        # deterministically should an export disagree with itself.
        F.max(s.PRODUCER_ID).alias(s.PRODUCER_ID),
        F.max(s.PRODUCT_CATEGORY).alias("category"),
        F.max(s.PRODUCT_NICHE).alias("niche"),
        F.max(s.PRODUCT_CREATION_DATE).alias("created"),
        F.count(F.lit(1)).alias("units"),
        F.sum("value").alias("revenue"),
        F.min(day).alias("first_sale_day"),
    )
    order = Window.partitionBy(s.PRODUCT_ID).orderBy(s.PURCHASE_DATE, s.PURCHASE_ID)
    first_sales = purchases.withColumn("_sale", F.row_number().over(order)).where(
        F.col("_sale") <= early_sales
    )
    # Apart from the totals: the percentile and the distinct sets run without generated
    # code, so this aggregate reads only each product's first sales (one aggregate of both
    # took 42 s instead of 36 s for the product table at 16M rows).
    is_first = F.col("_sale") == 1
    early = first_sales.groupBy(s.PRODUCT_ID).agg(
        F.count(F.lit(1)).alias("feature_sales"),
        F.max(F.when(is_first, is_affiliate_sale())).alias("first_sale_affiliate"),
        F.max(F.when(is_first, F.col("value"))).alias("first_sale_value"),
        # A programme that shows after the first sale: with a full run of early sales this
        # tells almost every programme product, whatever share of its sales affiliates make.
        (
            (F.count(F.lit(1)) == early_sales)
            & F.coalesce(F.max(F.when(~is_first, is_affiliate_sale())), F.lit(False))
        ).alias("later_early_sale_affiliate"),
        F.percentile_approx("value", 0.5, 10_000).alias("price_level"),
        F.avg(s.COMMISSION).alias("mean_commission"),
        (F.max(s.COMMISSION) > 0).alias("affiliate_programme"),
        F.avg(is_affiliate_sale().cast("double")).alias("affiliate_share"),
        distinct_count(F.when(is_affiliate_sale(), F.col(s.AFFILIATE_ID))).alias("affiliates"),
        F.avg(F.col(s.IS_SOCIAL).cast("double")).alias("social_share"),
        *[
            F.avg((F.col(s.PURCHASE_DEVICE) == device).cast("double")).alias(
                device_share_column(device)
            )
            for device in DEVICES
        ],
        distinct_count(s.PURCHASE_ORIGIN).alias("origins"),
    )
    # The producer's sums over the same computed product totals, not over a second
    # aggregate of the purchases: a one-product producer's other revenue must be exactly 0.
    # Summed in another order it is a rounding error that grows with the product's revenue,
    # which the trees then read as a feature of the best sellers.
    producer = Window.partitionBy(s.PRODUCER_ID)
    start, end = period
    on_sale_from = F.greatest(F.lit(start), F.coalesce(F.to_date("created"), F.lit(start)))
    return (
        totals.join(early, s.PRODUCT_ID)
        .select(
            s.PRODUCER_ID, *[c for c in totals.columns if c != s.PRODUCER_ID], *early.columns[1:]
        )
        .withColumn("producer_units", F.sum("units").over(producer))
        .withColumn("producer_revenue", F.sum("revenue").over(producer))
        .withColumn("producer_products", F.count(F.lit(1)).over(producer))
        .withColumn("age_at_first_sale_days", F.datediff("first_sale_day", F.to_date("created")))
        .withColumn("creation_month", F.date_format("created", "yyyy-MM"))
        .withColumn("age_at_period_start_days", F.datediff(F.lit(start), F.to_date("created")))
        .withColumn("days_on_sale", F.datediff(F.lit(end), on_sale_from) + 1)
        .withColumn("sales_after_first", F.col("units") - 1)
        .withColumn("producer_other_units", F.col("producer_units") - F.col("units"))
        .withColumn("producer_other_revenue", F.col("producer_revenue") - F.col("revenue"))
        .withColumn("producer_other_products", F.col("producer_products") - 1)
        .withColumn("log_units", F.log(F.col("units").cast("double")))
        .drop("created", "producer_units", "producer_revenue", "producer_products")
    )


def group_medians(products: DataFrame, feature: str) -> DataFrame:
    """Products, median and mean units and revenue per level of one categorical feature."""
    return products.groupBy(
        F.lit(feature).alias("feature"), F.col(feature).cast("string").alias("level")
    ).agg(
        F.count(F.lit(1)).alias("products"),
        F.percentile_approx("units", 0.5, 10_000).alias("median_units"),
        F.avg("units").alias("mean_units"),
        F.sum("revenue").alias("revenue"),
    )
