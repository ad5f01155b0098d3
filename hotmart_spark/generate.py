"""Synthetic purchases in the raw export's layout, at any size, deterministic by seed.

Built with plain Spark functions (no dbldatagen): the shape targets need things a column
spec cannot express, such as purchase counts per product drawn from a product table, days
drawn from a calendar profile and values standardised over the whole output. Every random
draw is a hash of (seed, stream, row key), so the output does not depend on partitioning.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType
from pyspark.sql.window import Window
from scipy import special

from hotmart_spark import filesystem
from hotmart_spark import schema as s
from hotmart_spark.config import RELATIVE_UNIT, GeneratorConfig, separator_char
from hotmart_spark.transforms.draws import uniform

# The real 2016 sample, which the default size reproduces.
REAL_ROWS = 1_599_828
REAL_PRODUCTS = 17_883
REAL_PRODUCERS = 8_020
REAL_AFFILIATES = 22_947
REAL_BUYERS = 1_100_649
REAL_ORIGINS = 9_600
# The sample covers January to June 2016.
REAL_DAYS = 182

# Purchase shares by category (Phisical book is the export's own spelling).
CATEGORY_SHARES: dict[str, float] = {
    "Phisical book": 0.83,
    "Podcast": 0.14,
    "eBook": 0.008,
    "Video": 0.006,
    "Workshop": 0.004,
    "Subscription": 0.004,
    "In-class course": 0.003,
    "Webinar": 0.002,
    "eTicket": 0.002,
    "App": 0.001,
}
# Relative price level by category.
CATEGORY_PRICE: dict[str, float] = {
    "Phisical book": 1.0,
    "Podcast": 0.9,
    "eBook": 0.8,
    "Video": 1.1,
    "Workshop": 1.6,
    "Subscription": 1.3,
    "In-class course": 2.0,
    "Webinar": 1.0,
    "eTicket": 1.2,
    "App": 1.5,
}
# The first six names are the sample's own (DESIGN.md); the rest complete its 25 niches.
NICHES: tuple[str, ...] = (
    "Negotiation",
    "Anxiety management",
    "Personal finance",
    "Presentation skills",
    "Immigration",
    "Physics",
    "Public speaking",
    "Digital marketing",
    "Entrepreneurship",
    "Weight loss",
    "Yoga",
    "Meditation",
    "Foreign languages",
    "Photography",
    "Programming",
    "Cooking",
    "Parenting",
    "Music",
    "Fitness",
    "Career",
    "Leadership",
    "Sales",
    "Investments",
    "Self-esteem",
    "Mathematics",
)
DEVICE_SHARES: dict[str, float] = {
    "eReaders": 0.47,
    "Desktop": 0.33,
    "Smart TV": 0.185,
    "Cellphone": 0.01,
    "Tablet": 0.005,
}
# Planted demand (docs/data.md, "Planted truth"): a product's expected sales after its first
# are scale * days-on-sale share * exp(producer effect + niche effect + category effect
# + PRICE_SENSITIVITY * log(price) + AGE_EFFECT_PER_YEAR * age + programme effect + noise),
# the producer effect being PRODUCER_BREADTH_EFFECT * log(the producer's products) plus a
# normal draw per producer. Their spread makes purchases per product median 7 and mean 89.
PRODUCER_EFFECT_SD = 0.6
PRODUCER_BREADTH_EFFECT = 0.3
NICHE_EFFECT_SD = 1.2
CATEGORY_EFFECT: dict[str, float] = {
    "Phisical book": 0.0,
    "Podcast": -0.1,
    "eBook": -0.2,
    "Video": -0.1,
    "Workshop": -0.3,
    "Subscription": 0.2,
    "In-class course": -0.4,
    "Webinar": -0.2,
    "eTicket": -0.3,
    "App": 0.1,
}
PRICE_SENSITIVITY = -0.8
AGE_EFFECT_PER_YEAR = -0.15
DEMAND_NOISE_SD = 1.9
# The affiliate programme: a logit in observed features only (the niche's demand, the
# producer's number of products, the category's price level), so products that sell more
# for observed reasons run one more often. A programme product sells a share of its units
# through affiliates at an offered rate; some affiliate sales are recorded at 0% (a quirk of
# the export, warned about).
PROGRAMME_INTERCEPT = -2.2
PROGRAMME_NICHE_WEIGHT = 0.6
PROGRAMME_BREADTH_WEIGHT = 0.5
PROGRAMME_PRICE_WEIGHT = 1.0
AFFILIATE_SALE_SHARE = (0.3, 0.8)
COMMISSION_RATES = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0)
ZERO_COMMISSION_SHARE = 0.02
# Value: many purchases at the floor price, the rest product price times a purchase-level
# factor, and a few bulk purchases far out in the tail (min, median and skew of the sample).
FLOOR_PRICE_SHARE = 0.45
FLOOR_PRICE = 0.02
PRICE_SIGMA = 0.6
PURCHASE_SIGMA = 0.6
BULK_SHARE = 1e-5
BULK_PRICE = (120.0, 200.0)
NEW_PRODUCT_SHARE = 0.2
SOCIAL_ORIGIN_SHARE = 0.15
# Calendar profile: weekday (Mon..Sun), month (Jan..Dec), hour of day; growth per year.
WEEKDAY_FACTOR = (1.10, 1.08, 1.05, 1.02, 0.95, 0.88, 0.92)
MONTH_FACTOR = (1.0, 0.82, 1.35, 1.0, 0.98, 0.97, 0.95, 1.0, 1.02, 1.05, 1.15, 0.92)
HOUR_FACTOR = (
    *(0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.2, 1.25),
    *(1.2, 1.15, 1.15, 1.2, 1.2, 1.25, 1.3, 1.4, 1.5, 1.4, 1.0, 0.6),
)
YEARLY_GROWTH = 0.25
# Resolution of the inverse-CDF tables that turn a uniform draw into a day or an hour.
DAY_SLOTS = 1 << 16
HOUR_SLOTS = 1 << 12
# Products whose category is assigned one by one so category shares hold despite their size.
LARGEST_PRODUCTS = 500
# purchase_id = product index * PURCHASE_STRIDE + n-th purchase of the product.
PURCHASE_STRIDE = 1 << 22
# A product's purchases are drawn in chunks of at most CHUNK_ROWS, spread over partitions of
# about ROWS_PER_PARTITION rows: the generated rows are kept for the export and the
# calibration, and one kept partition must fit in a small driver (2g at 100M rows).
CHUNK_ROWS = 100_000
ROWS_PER_PARTITION = 1_000_000
# Up to this many products (about 30 MB of catalogue) join the purchases by broadcast; a
# larger catalogue is shuffled to them (and its best sellers split by adaptive skew joins).
BROADCAST_PRODUCTS = 200_000
# Ids of producers, affiliates and buyers share one space: id = index * 4 + kind.
PRODUCER_KIND, AFFILIATE_KIND, BUYER_KIND = 1, 2, 3
DEFECT_KINDS: tuple[str, ...] = (
    "placeholder_burst",
    "outside_period",
    "purchase_before_creation",
    "commission_invalid",
    "direct_sale_with_commission",
    "malformed",
    "duplicate_purchase_id",
)


@dataclass(frozen=True)
class Sizes:
    """Entity counts for a run, scaled from the real sample by rows."""

    rows: int
    products: int
    producers: int
    affiliates: int
    buyers: int
    origins: int

    @classmethod
    def for_rows(cls, rows: int) -> Sizes:
        scale = rows / REAL_ROWS

        def scaled(n: int) -> int:
            return max(1, round(n * scale))

        return cls(
            rows=rows,
            products=min(rows, scaled(REAL_PRODUCTS)),
            producers=scaled(REAL_PRODUCERS),
            affiliates=scaled(REAL_AFFILIATES),
            buyers=min(rows, scaled(REAL_BUYERS)),
            origins=min(rows, scaled(REAL_ORIGINS)),
        )


# The generator leaves this file beside its export: a run can tell its input was synthetic.
CALIBRATION_FILE = "_calibration.json"
# ... and this one, with what it planted (planted_truth), for the report to set beside what
# the pipeline recovered.
TRUTH_FILE = "_truth.json"
# Per product, whether it has a programme (Parquet; the leading "_" keeps readers of the
# folder, Spark's and this project's, from taking it for input).
TRUTH_PRODUCTS = "_truth_products"


def _input_folder(path: str) -> str:
    if filesystem.is_dir(path):
        return path
    return path.rstrip("/").rsplit("/", 1)[0] if "/" in path.rstrip("/") else "."


def is_generated(path: str) -> bool:
    """Whether the input at path (a file or a folder) was written by this generator."""
    return filesystem.is_file(filesystem.join(_input_folder(path), CALIBRATION_FILE))


def read_truth(path: str) -> dict[str, Any] | None:
    """The planted truth beside a generated input, or None when there is none."""
    folder = _input_folder(path)
    data = filesystem.read_bytes(filesystem.join(folder, TRUTH_FILE))
    if data is None:
        return None
    truth = json.loads(data.decode("utf-8"))
    buyers = filesystem.join(folder, TRUTH_BUYERS)
    if "buyers" in truth and filesystem.is_dir(buyers):
        truth["buyers"]["after_period_table"] = filesystem.qualified(buyers)
    return truth


def normal(seed: int, stream: str, *keys: Column) -> Column:
    """A standard normal draw (Box-Muller on two hashed uniforms)."""
    u1 = uniform(seed, f"{stream}:1", *keys)
    u2 = uniform(seed, f"{stream}:2", *keys)
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos(2.0 * math.pi * u2)


def literal_map(values: dict[str, float]) -> Column:
    """A map column of fixed name -> number pairs, to look a row's value up by its name."""
    return F.create_map(*[F.lit(x) for pair in values.items() for x in pair])


def pick(u: Column, shares: dict[str, float]) -> Column:
    """The name whose cumulative-share interval holds u."""
    total = sum(shares.values())
    names = list(shares)
    expr, cumulative = None, 0.0
    for name in names[:-1]:
        cumulative += shares[name] / total
        expr = (F if expr is None else expr).when(u < cumulative, F.lit(name))
    return expr.otherwise(F.lit(names[-1])) if expr is not None else F.lit(names[-1])


def skewed_index(u: Column, pool: int, skew: float) -> Column:
    """An index in [0, pool) where low indexes are drawn most (skew > 1)."""
    return F.least(F.floor(F.pow(u, skew) * pool), F.lit(pool - 1)).cast("long")


def pool_for_distinct(target: float, draws: float, skew: float) -> int:
    """Pool size whose `draws` skewed draws hit `target` distinct indexes on average."""
    target = min(target, 0.9 * draws)

    def expected(pool: int) -> float:
        if skew == 1.0:
            # Uniform draws: every index has p = 1 / pool.
            return pool * float(-np.expm1(draws * np.log1p(-1.0 / pool))) if pool > 1 else 1.0
        j = np.arange(pool, dtype=np.float64)
        p = ((j + 1) / pool) ** (1 / skew) - (j / pool) ** (1 / skew)
        return float(np.sum(-np.expm1(draws * np.log1p(-np.minimum(p, 1 - 1e-16)))))

    lo, hi = max(1, int(target)), max(2, int(target) * 2)
    while expected(hi) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    return hi


def day_weights(start: dt.date, end: dt.date) -> np.ndarray:
    """Relative purchase volume per day of [start, end]: weekday, month and yearly growth."""
    days = pd.date_range(start, end, freq="D")
    weekday = np.array(WEEKDAY_FACTOR)[days.dayofweek]
    month = np.array(MONTH_FACTOR)[days.month - 1]
    growth = (1 + YEARLY_GROWTH) ** ((days - days[0]).days.to_numpy() / 365.25)
    return np.asarray(weekday * month * growth, dtype=np.float64)


def inverse_cdf_table(
    spark: SparkSession, weights: Sequence[float], slots: int, name: str
) -> DataFrame:
    """(slot, name): slot k of `slots` maps to the index whose cumulative weight covers it."""
    cdf = np.concatenate([[0.0], np.cumsum(weights) / np.sum(weights)])
    intervals = spark.createDataFrame(
        pd.DataFrame({name: np.arange(len(weights)), "lo": cdf[:-1], "hi": cdf[1:]})
    )
    middle = (F.col("slot") + 0.5) / slots
    return (
        spark.range(slots)
        .withColumnRenamed("id", "slot")
        .join(F.broadcast(intervals), (middle >= F.col("lo")) & (middle < F.col("hi")))
        .select("slot", F.col(name).cast("long").alias(name))
    )


def cdf_before_day(spark: SparkSession, weights: np.ndarray) -> DataFrame:
    """(first_day, cdf_before): the share of the period's volume before each day."""
    before = np.concatenate([[0.0], np.cumsum(weights)[:-1]]) / weights.sum()
    return spark.createDataFrame(
        pd.DataFrame({"first_day": np.arange(len(weights), dtype=np.int32), "cdf_before": before})
    )


def niche_effects(seed: int) -> dict[str, float]:
    """Each niche's planted demand effect (log scale), drawn once per seed."""
    draws = np.random.default_rng([seed, 29]).standard_normal(len(NICHES))
    return {n: float(NICHE_EFFECT_SD * d) for n, d in zip(NICHES, draws, strict=True)}


def truth_products(catalogue: DataFrame) -> DataFrame:
    """The planted per-product truth: product_id and whether it has a programme."""
    return catalogue.select(s.PRODUCT_ID, F.col("has_programme").alias("programme"))


def planted_truth(seed: int, programme_effect: float) -> dict[str, Any]:
    """What the generator plants, for the truth file: the demand model and the programme."""
    return {
        "seed": seed,
        "programme_effect": {
            "log_ratio": programme_effect,
            "ratio": math.exp(programme_effect),
            "estimand": (
                "ratio of a product's expected sales after its first sale, per day on sale, "
                "with an affiliate programme to without one"
            ),
        },
        "demand": {
            "producer_effect_sd": PRODUCER_EFFECT_SD,
            "producer_breadth_effect": PRODUCER_BREADTH_EFFECT,
            "niche_effects": niche_effects(seed),
            "category_effects": CATEGORY_EFFECT,
            "price_sensitivity": PRICE_SENSITIVITY,
            "age_effect_per_year": AGE_EFFECT_PER_YEAR,
            "noise_sd": DEMAND_NOISE_SD,
        },
        "programme_assignment": {
            "intercept": PROGRAMME_INTERCEPT,
            "per_niche_effect_sd": PROGRAMME_NICHE_WEIGHT,
            "per_log_producer_products": PROGRAMME_BREADTH_WEIGHT,
            "per_log_category_price": PROGRAMME_PRICE_WEIGHT,
            "affiliate_sale_share": list(AFFILIATE_SALE_SHARE),
        },
    }


def products(
    spark: SparkSession,
    sizes: Sizes,
    seed: int,
    start: dt.date,
    end: dt.date,
    programme_effect: float = 0.0,
) -> DataFrame:
    """The product catalogue with each product's purchase count n (summing to sizes.rows),
    drawn from the planted demand model (see planted_truth)."""
    weights = day_weights(start, end)
    period_days = len(weights)
    key = F.col("product_index")

    def u(stream: str) -> Column:
        return uniform(seed, stream, key)

    producer_pool = pool_for_distinct(sizes.producers, sizes.products, skew=2.0)
    is_new = u("new") < NEW_PRODUCT_SHARE
    creation_day = F.when(is_new, F.floor(u("created_day") * period_days)).otherwise(
        -1 - F.floor(-F.log(1.0 - u("created_day")) * 700.0)
    )
    creation = F.timestamp_seconds(
        F.unix_timestamp(F.lit(f"{start} 00:00:00"))
        + creation_day.cast("long") * 86400
        + F.floor(u("created_second") * 86400).cast("long")
    )
    price_level = literal_map(CATEGORY_PRICE)
    category_effect = literal_map(CATEGORY_EFFECT)
    niche_effect = literal_map(niche_effects(seed))
    offered_rate = F.element_at(
        F.array(*[F.lit(r) for r in COMMISSION_RATES]),
        (F.floor(u("rate") * len(COMMISSION_RATES)) + 1).cast("int"),
    )
    low, high = AFFILIATE_SALE_SHARE
    drawn = (
        spark.range(sizes.products)
        .withColumnRenamed("id", "product_index")
        .select(
            key,
            (key + 1).alias(s.PRODUCT_ID),
            (skewed_index(u("producer"), producer_pool, 2.0) * 4 + PRODUCER_KIND).alias(
                s.PRODUCER_ID
            ),
            pick(u("niche"), {n: 1.0 / (i + 3) for i, n in enumerate(NICHES)}).alias(
                s.PRODUCT_NICHE
            ),
            pick(u("category"), CATEGORY_SHARES).alias("drawn_category"),
            creation.alias(s.PRODUCT_CREATION_DATE),
            F.greatest(creation_day, F.lit(0)).cast("int").alias("first_day"),
            (F.greatest(-creation_day, F.lit(0)) / 365.25).alias("age_years"),
            (DEMAND_NOISE_SD * normal(seed, "demand", key)).alias("noise"),
            F.exp(PRICE_SIGMA * normal(seed, "price", key)).alias("base_price"),
            u("programme").alias("programme_draw"),
            offered_rate.alias("offered_rate"),
            (low + (high - low) * u("affiliate_share")).alias("offered_share"),
            u("rounding").alias("rounding"),
        )
    )
    breadth = drawn.groupBy(s.PRODUCER_ID).agg(
        F.log(F.count(F.lit(1)).cast("double")).alias("log_breadth")
    )
    producer_effect = PRODUCER_EFFECT_SD * normal(seed, "producer_effect", F.col(s.PRODUCER_ID))
    catalogue = (
        drawn.join(breadth, s.PRODUCER_ID)
        # A product created inside the period is on sale from its creation day on.
        .join(F.broadcast(cdf_before_day(spark, weights)), "first_day", "left")
        .withColumn("exposure", (period_days - F.col("first_day")) / float(period_days))
        # The demand the product has before its category, price and programme are known.
        .withColumn(
            "latent",
            producer_effect
            + PRODUCER_BREADTH_EFFECT * F.col("log_breadth")
            + niche_effect[F.col(s.PRODUCT_NICHE)]
            + AGE_EFFECT_PER_YEAR * F.col("age_years")
            + F.col("noise"),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    # The largest products get categories one by one so category shares hold despite their
    # size; they are ranked on the demand drawn before the category and the programme (the
    # base price included), so the programme cannot decide a product's category.
    largest = (
        catalogue.withColumn(
            "size",
            F.exp(F.col("latent") + PRICE_SENSITIVITY * F.log("base_price")) * F.col("exposure"),
        )
        .orderBy(F.desc("size"), "product_index")
        .limit(LARGEST_PRODUCTS)
        .select("product_index", "size")
        .toPandas()
    )
    largest["assigned_category"] = _assign_categories(largest["size"].tolist())
    fixed = spark.createDataFrame(largest[["product_index", "assigned_category"]])
    category = F.col(s.PRODUCT_CATEGORY)
    programme_logit = (
        PROGRAMME_INTERCEPT
        + PROGRAMME_NICHE_WEIGHT * niche_effect[F.col(s.PRODUCT_NICHE)] / NICHE_EFFECT_SD
        + PROGRAMME_BREADTH_WEIGHT * F.col("log_breadth")
        + PROGRAMME_PRICE_WEIGHT * F.log(price_level[category])
    )
    demanded = (
        catalogue.join(F.broadcast(fixed), "product_index", "left")
        .withColumn(s.PRODUCT_CATEGORY, F.coalesce("assigned_category", "drawn_category"))
        .withColumn("base_price", F.col("base_price") * price_level[category])
        .withColumn("has_programme", F.col("programme_draw") < 1 / (1 + F.exp(-programme_logit)))
        .withColumn(
            "demand",
            F.col("exposure")
            * F.exp(
                F.col("latent")
                + category_effect[category]
                + PRICE_SENSITIVITY * F.log("base_price")
                + F.when(F.col("has_programme"), programme_effect).otherwise(0.0)
            ),
        )
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    # Every product in the export sold at least once; its further sales have the expected
    # number scale * demand, rounded at random (floor(x + u) has mean x).
    total_demand = demanded.agg(F.sum("demand")).first()[0]
    catalogue.unpersist()
    scale = (sizes.rows - sizes.products) / total_demand
    counted = demanded.withColumn(
        "n", (1 + F.floor(F.col("demand") * scale + F.col("rounding"))).cast("long")
    )
    counted = _summing_to(counted, sizes.rows)
    demanded.unpersist()
    return counted.select(
        "product_index",
        s.PRODUCT_ID,
        s.PRODUCER_ID,
        s.PRODUCT_NICHE,
        s.PRODUCT_CATEGORY,
        s.PRODUCT_CREATION_DATE,
        "first_day",
        "cdf_before",
        "base_price",
        "has_programme",
        F.when(F.col("has_programme"), F.col("offered_rate"))
        .otherwise(0.0)
        .alias("commission_rate"),
        F.when(F.col("has_programme"), F.col("offered_share"))
        .otherwise(0.0)
        .alias("affiliate_share"),
        "n",
    )


def _summing_to(counted: DataFrame, total: int) -> DataFrame:
    """Products with counts `n` rounded at random, the largest (ties by index) changed by the
    few purchases that make the counts sum to `total`."""
    surplus = total - counted.agg(F.sum("n")).first()[0]
    largest = counted.orderBy(F.desc("n"), "product_index").select("product_index").first()[0]
    return counted.withColumn(
        "n", F.col("n") + F.when(F.col("product_index") == largest, surplus).otherwise(0)
    )


def _partitions(spark: SparkSession, rows: int) -> int:
    """Partitions of about ROWS_PER_PARTITION generated rows, and at least one per core."""
    return max(spark.sparkContext.defaultParallelism, -(-rows // ROWS_PER_PARTITION))


def _assign_categories(sizes: list[float]) -> list[str]:
    """Categories for the largest products (largest first), each to the one furthest below its share."""
    assigned_total = 0.0
    per_category = dict.fromkeys(CATEGORY_SHARES, 0.0)
    result = []
    for n in sizes:
        total = assigned_total + n
        category = max(CATEGORY_SHARES, key=lambda c: CATEGORY_SHARES[c] * total - per_category[c])
        result.append(category)
        per_category[category] += n
        assigned_total = total
    return result


# Planted buyers (docs/data.md, "Planted truth"): the BG/NBD process of Fader, Hardie and Lee
# (2005), in days. A buyer's repeat purchases come at a Poisson rate drawn from
# Gamma(shape BUYER_RATE_SHAPE, rate BUYER_RATE_SCALE_DAYS); after each repeat purchase the
# buyer drops out for good with a probability drawn from Beta(DROPOUT_A, DROPOUT_B).
# BUYER_RATE_SCALE_DAYS is set so the sample's half year gives its 1.45 purchases per buyer.
BUYER_RATE_SHAPE = 0.25
BUYER_RATE_SCALE_DAYS = 40.0
DROPOUT_A = 0.8
DROPOUT_B = 2.5
# Buyers are drawn with this much headroom (times 1/sqrt(rows)) over the expected number the
# period's rows need; the first buyers, in index order, whose purchases make `rows` are kept.
BUYER_HEADROOM = 8.0
# The drawn buyers are counted in this many blocks of consecutive indexes to find where the
# kept ones end: the driver collects one row per block and one row of the last, whatever
# the number of buyers.
BUYER_BLOCKS = 1024
# After-period buyers take indexes from here, so their draws never collide with the period's.
AFTER_BUYER_INDEX = 1 << 40
# A buyer's repeat purchases up to the horizon are drawn as a Poisson count: the inverse CDF
# walks at most mean + 6 sd + 6 steps (the chance of more is below 1e-9).
POISSON_SDS = 6.0
# Each written buyer's purchases after the period and whether it was still active at its end.
TRUTH_BUYERS = "_truth_buyers"


def expected_repeats(t: np.ndarray) -> np.ndarray:
    """A new buyer's expected repeat purchases within t days of its first (BG/NBD, eq. 9 of
    Fader, Hardie and Lee 2005)."""
    t = np.asarray(t, dtype=np.float64)
    r, alpha, a, b = BUYER_RATE_SHAPE, BUYER_RATE_SCALE_DAYS, DROPOUT_A, DROPOUT_B
    z = t / (alpha + t)
    hyp = special.hyp2f1(r, b, a + b - 1.0, z)
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp)


def arrivals_for(target: np.ndarray) -> np.ndarray:
    """New buyers per day whose first purchases, with the repeat purchases all buyers are
    expected to make, give `target` purchases per day.

    With buyers arriving on the calendar profile itself, repeat purchases would pile up over
    the period (no buyer is older than the period) and December would outsell March by half:
    the arrivals make room for them instead, so purchases keep the profile.
    """
    days = len(target)
    # Repeats on day k of a buyer who arrived at a uniform time during day 0 (midpoint rule).
    edges = expected_repeats(np.arange(days, dtype=np.float64) + 0.5)
    kernel = np.diff(np.concatenate([[0.0], edges]))
    arrivals = np.zeros(days)
    for day in range(days):
        repeats = float(np.dot(arrivals[:day][::-1], kernel[1 : day + 1]))
        arrivals[day] = max(target[day] - repeats, 0.0) / (1.0 + kernel[0])
    return arrivals


def horizon_end(end: dt.date, months_after: int) -> dt.date:
    """The last day the buyers' process is simulated: months_after months past the period."""
    return (pd.Timestamp(end) + pd.DateOffset(months=months_after)).date()


@F.pandas_udf(DoubleType())
def _purchase_rate(u: pd.Series) -> pd.Series:
    """A buyer's repeat purchases per day: the Gamma(r, alpha) quantile at u."""
    rate = special.gammaincinv(BUYER_RATE_SHAPE, u.to_numpy()) / BUYER_RATE_SCALE_DAYS
    return pd.Series(np.maximum(rate, 1e-12))


@F.pandas_udf(DoubleType())
def _dropout(u: pd.Series) -> pd.Series:
    """A buyer's chance to drop out after each repeat purchase: the Beta(a, b) quantile at u."""
    p = special.betaincinv(DROPOUT_A, DROPOUT_B, u.to_numpy())
    return pd.Series(np.clip(p, 1e-12, 1.0 - 1e-12))


def _buyers_drawn(
    spark: SparkSession,
    seed: int,
    first_index: int,
    count: int,
    arrivals: np.ndarray,
    first_day: int,
    horizon_days: int,
    period_days: int,
) -> DataFrame:
    """`count` buyers arriving on days first_day.. with weights `arrivals`: per buyer its
    purchase times (days from the period's start, first purchase first, up to the horizon),
    its purchases inside the period and whether it is still active at the period's end."""
    key = F.col("buyer_index")

    def u(stream: str, *more: Column) -> Column:
        return uniform(seed, stream, key, *more)

    slots = inverse_cdf_table(spark, arrivals, DAY_SLOTS, "arrival_day")
    arrival = first_day + F.col("arrival_day") + u("arrival_time")
    partitions = _partitions(spark, count)
    drawn = (
        spark.range(first_index, first_index + count, numPartitions=partitions)
        .withColumnRenamed("id", "buyer_index")
        .withColumn("slot", F.floor(u("arrival_day") * DAY_SLOTS).cast("long"))
        .join(F.broadcast(slots), "slot")
        .select(
            "buyer_index",
            arrival.alias("arrival"),
            _purchase_rate(u("rate")).alias("rate"),
            _dropout(u("dropout")).alias("dropout"),
        )
    )
    # Repeat purchases the buyer makes before dropping out, if time allowed (at least one).
    repeats_to_dropout = F.least(
        1 + F.floor(F.log(1.0 - u("dropout_after")) / F.log1p(-F.col("dropout"))),
        F.lit(1e9),
    ).cast("long")
    mean = F.least(F.col("rate") * (horizon_days - F.col("arrival")), F.lit(700.0))
    steps = F.ceil(mean + POISSON_SDS * F.sqrt(mean) + POISSON_SDS).cast("int")
    draw = u("repeats")

    def next_count(acc: Column, k: Column) -> Column:
        pmf = acc["pmf"] * mean / k
        return F.when(
            acc["cdf"] < draw,
            F.struct(pmf.alias("pmf"), (acc["cdf"] + pmf).alias("cdf"), k.alias("count")),
        ).otherwise(acc)

    start = F.struct(F.exp(-mean).alias("pmf"), F.exp(-mean).alias("cdf"), F.lit(0).alias("count"))
    # A Poisson process's times in a window, given their number, are sorted uniform draws.
    # Most buyers (about two in three) have none: only the others walk the CDF.
    in_window = F.when(draw < F.exp(-mean), F.lit(0)).otherwise(
        F.aggregate(F.sequence(F.lit(1), steps), start, next_count, lambda a: a["count"])
    )
    times = F.array_sort(
        F.transform(
            F.sequence(F.lit(1), F.greatest(F.col("in_window"), F.lit(1))),
            lambda j: F.col("arrival") + (horizon_days - F.col("arrival")) * u("repeat_time", j),
        )
    )
    repeats = F.when(
        F.col("in_window") > 0,
        F.slice(times, 1, F.least(F.col("in_window"), F.col("repeats_to_dropout")).cast("int")),
    ).otherwise(F.array().cast("array<double>"))
    return (
        drawn.withColumn("repeats_to_dropout", repeats_to_dropout)
        .withColumn("in_window", in_window)
        .select(
            "buyer_index",
            F.concat(F.array(F.col("arrival")), repeats).alias("purchases"),
            "repeats_to_dropout",
        )
        .withColumn("in_period", F.size(F.filter("purchases", lambda t: t < period_days)))
        # Active at the end: the purchase it drops out after is not inside the period.
        .withColumn("active_at_end", F.col("in_period") - 1 < F.col("repeats_to_dropout"))
        .drop("repeats_to_dropout")
    )


@dataclass
class Buyers:
    """The simulated buyers: the written ones (exactly `rows` purchases in the period) and the
    ones arriving after it, each with its purchase times in days from the period's start."""

    table: DataFrame
    period_days: int
    horizon_days: int
    written: int
    expected_per_buyer: float
    # Purchases per day and new buyers per day the process expects, over the horizon.
    expected_daily: np.ndarray
    arrivals_daily: np.ndarray

    def purchases(self, after: bool) -> DataFrame:
        """(buyer_index, purchase, day): the purchases inside the period (of the written
        buyers), or after it (of every buyer; day counted from the period's end then)."""
        times = self.table.select(
            "buyer_index", "written", F.posexplode("purchases").alias("purchase", "time")
        )
        if after:
            chosen = times.where(F.col("time") >= self.period_days).withColumn(
                "day", F.floor(F.col("time") - self.period_days).cast("int")
            )
        else:
            chosen = times.where(F.col("written") & (F.col("time") < self.period_days)).withColumn(
                "day", F.floor("time").cast("int")
            )
        return chosen.select("buyer_index", "purchase", "day")


def buyers(
    spark: SparkSession,
    catalogue: DataFrame,
    rows: int,
    seed: int,
    start: dt.date,
    end: dt.date,
    months_after: int,
) -> Buyers:
    """Buyers whose purchases inside the period are exactly `rows`, arriving so that the
    purchases per day follow the products' (see arrivals_for); simulated months_after months
    past the period. The table is kept: unpersist it when done."""
    weights = day_weights(start, horizon_end(end, months_after))
    period_days = (end - start).days + 1
    horizon_days = len(weights)
    # A product sells on day d at n / (1 - cdf_before) times that day's share of the period's
    # weight: the purchases per day the products expect, and the buyers must bring.
    rates = (
        catalogue.groupBy("first_day")
        .agg(F.sum(F.col("n") / (1.0 - F.col("cdf_before"))).alias("rate"))
        .toPandas()
    )
    starting = np.zeros(period_days)
    np.add.at(starting, rates["first_day"].to_numpy(), rates["rate"].to_numpy())
    on_sale = np.concatenate(
        [np.cumsum(starting), np.full(horizon_days - period_days, starting.sum())]
    )
    target = weights / weights[:period_days].sum() * on_sale
    arrivals = arrivals_for(target)
    expected_buyers = arrivals[:period_days].sum()
    drawn_count = math.ceil(expected_buyers * (1 + BUYER_HEADROOM / math.sqrt(rows)) + 10)
    while True:
        # At the session's cache level: disk only on runs too large for memory.
        drawn = _buyers_drawn(
            spark, seed, 0, drawn_count, arrivals[:period_days], 0, horizon_days, period_days
        ).cache()
        block = F.floor(F.col("buyer_index") * BUYER_BLOCKS / drawn_count).cast("long")
        blocks = (
            drawn.groupBy(block.alias("block"))
            .agg(F.sum("in_period").alias("purchases"))
            .toPandas()
            .sort_values("block")
        )
        if blocks["purchases"].sum() >= rows:
            break
        # Unlikely (8 sd of headroom): draw more; the first buyers stay the same.
        drawn.unpersist()
        drawn_count *= 2
    before = blocks["purchases"].cumsum() - blocks["purchases"]
    last_block = int(np.searchsorted(blocks["purchases"].cumsum().to_numpy(), rows))
    needed = rows - int(before.iloc[last_block])
    # In the last block, the first buyer whose purchases, with the block's earlier buyers',
    # reach what the period still needs.
    so_far = F.sum("in_period").over(Window.partitionBy("block").orderBy("buyer_index"))
    cut_row = (
        drawn.withColumn("block", block)
        .where(F.col("block") == int(blocks["block"].iloc[last_block]))
        .withColumn("so_far", so_far)
        .where(F.col("so_far") >= needed)
        .orderBy("buyer_index")
        .select("buyer_index", (F.col("so_far") - F.col("in_period")).alias("before"))
        .first()
    )
    cut_buyer = int(cut_row["buyer_index"])
    cut_keeps = needed - int(cut_row["before"])
    written = cut_buyer + 1
    # The last buyer keeps as many purchases as the period still needs and stops there.
    cut = F.col("buyer_index") == cut_buyer
    kept = drawn.where(F.col("buyer_index") <= cut_buyer).select(
        "buyer_index",
        F.when(cut, F.slice("purchases", 1, cut_keeps))
        .otherwise(F.col("purchases"))
        .alias("purchases"),
        F.when(cut, F.lit(False)).otherwise(F.col("active_at_end")).alias("active_at_end"),
        F.lit(True).alias("written"),
    )
    after_count = round(written * arrivals[period_days:].sum() / expected_buyers)
    newcomers = (
        _buyers_drawn(
            spark,
            seed,
            AFTER_BUYER_INDEX,
            after_count,
            arrivals[period_days:],
            period_days,
            horizon_days,
            period_days,
        ).select("buyer_index", "purchases", "active_at_end", F.lit(False).alias("written"))
        if after_count > 0
        else None
    )
    table = kept if newcomers is None else kept.unionByName(newcomers)
    table = table.cache()
    table.count()
    drawn.unpersist()
    return Buyers(
        table, period_days, horizon_days, written, rows / expected_buyers, target, arrivals
    )


def buyer_process_truth(world: Buyers) -> dict[str, Any]:
    """The planted buyer process, for the truth file."""
    return {
        "model": "BG/NBD (Fader, Hardie and Lee 2005), time in days",
        "r": BUYER_RATE_SHAPE,
        "alpha": BUYER_RATE_SCALE_DAYS,
        "a": DROPOUT_A,
        "b": DROPOUT_B,
        "arrivals": (
            "new buyers arrive so that purchases per day follow the calendar profile and the "
            "products on sale; no buyer is older than the period"
        ),
        "expected_purchases_per_buyer": world.expected_per_buyer,
        "written_buyers": world.written,
    }


def purchases(
    spark: SparkSession,
    sizes: Sizes,
    seed: int,
    start: dt.date,
    end: dt.date,
    programme_effect: float = 0.0,
) -> DataFrame:
    """Clean synthetic purchases (no defects) with their value in raw_value, not yet standardised."""
    catalogue = products(spark, sizes, seed, start, end, programme_effect)
    world = buyers(spark, catalogue, sizes.rows, seed, start, end, months_after=0)
    return purchases_of(spark, catalogue, sizes, seed, start, end, world)


def _raw_value(seed: int, prefix: str, key: Column) -> Column:
    """A purchase's value in the product's currency: mostly the product's price with noise, a
    floor price on a large share, now and then a bulk purchase."""

    def u(stream: str) -> Column:
        return uniform(seed, prefix + stream, key)

    return (
        F.when(
            u("bulk") < BULK_SHARE, BULK_PRICE[0] + (BULK_PRICE[1] - BULK_PRICE[0]) * u("bulk_size")
        )
        .when(u("floor") < FLOOR_PRICE_SHARE, FLOOR_PRICE * (1.0 + u("floor_size")))
        .otherwise(
            F.col("base_price") * F.exp(PURCHASE_SIGMA * normal(seed, prefix + "value", key))
        )
    )


def _slots(
    catalogue: DataFrame,
    weights: np.ndarray,
    seed: int,
    prefix: str,
) -> DataFrame:
    """(product_index, first_day, purchase_key, day): one row per purchase of each product (its
    n), with a day drawn from the calendar weights from the product's first day on. Only the
    keys travel through the pairing's shuffles; the product's columns join back after."""
    key = F.col("purchase_key")
    # A product created inside the period sells only from its creation day on.
    day_slot = F.floor(
        (F.col("cdf_before") + uniform(seed, prefix + "day", key) * (1.0 - F.col("cdf_before")))
        * DAY_SLOTS
    ).cast("long")
    day_slots = inverse_cdf_table(catalogue.sparkSession, weights, DAY_SLOTS, "day")
    chunk_start = F.col("chunk") * CHUNK_ROWS
    return (
        catalogue.select(
            "product_index",
            "n",
            "first_day",
            "cdf_before",
            F.explode(F.sequence(F.lit(0), ((F.col("n") - 1) / CHUNK_ROWS).cast("long"))).alias(
                "chunk"
            ),
        )
        .select(
            "product_index",
            "first_day",
            "cdf_before",
            F.explode(
                F.sequence(chunk_start, F.least(chunk_start + CHUNK_ROWS, F.col("n")) - 1)
            ).alias("nth"),
        )
        .withColumn("purchase_key", F.col("product_index") * PURCHASE_STRIDE + F.col("nth"))
        .withColumn("day_slot", F.least(day_slot, F.lit(DAY_SLOTS - 1)))
        .join(F.broadcast(day_slots.withColumnRenamed("slot", "day_slot")), "day_slot")
        .select("product_index", "first_day", "purchase_key", "day")
    )


def _positioned(rows: DataFrame, order: list[Column], partitions: int) -> DataFrame:
    """rows with `position`, their index when sorted by day and then `order`, found without
    a global sort: per-day counts on the driver, a rank inside each day."""
    counts = rows.groupBy("day").count().toPandas().sort_values("day")
    starts = pd.DataFrame(
        {
            "day": counts["day"].astype("int32"),
            "day_start": (counts["count"].cumsum() - counts["count"]).astype("int64"),
        }
    )
    within_day = Window.partitionBy("day").orderBy(*order)
    return (
        rows.join(F.broadcast(rows.sparkSession.createDataFrame(starts)), "day")
        .withColumn("position", F.col("day_start") + F.row_number().over(within_day) - 1)
        .drop("day_start")
        .repartition(partitions, "position")
    )


def _paired(
    slots: DataFrame, purchases: DataFrame, seed: int, prefix: str, partitions: int
) -> DataFrame:
    """Each product slot given a buyer's purchase: both sides sorted by day (at random within
    a day) and paired by rank. Both expect the same purchases per day, so a slot lands on its
    own day or a neighbour; the buyer's day is kept, but never before the product's first."""
    slots = _positioned(
        slots, [uniform(seed, prefix + "pair", F.col("purchase_key")), "purchase_key"], partitions
    )
    buyer, nth = F.col("buyer_index"), F.col("purchase")
    purchases = _positioned(
        purchases, [uniform(seed, prefix + "pair", buyer, nth), buyer, nth], partitions
    ).withColumnRenamed("day", "buyer_day")
    return (
        slots.join(purchases, "position")
        .withColumn("day", F.greatest("buyer_day", "first_day"))
        .drop("position", "buyer_day", "purchase")
    )


def _small(catalogue: DataFrame, products: int) -> DataFrame:
    """The catalogue marked for a broadcast join when it is small enough."""
    return F.broadcast(catalogue) if products <= BROADCAST_PRODUCTS else catalogue


def purchases_of(
    spark: SparkSession,
    catalogue: DataFrame,
    sizes: Sizes,
    seed: int,
    start: dt.date,
    end: dt.date,
    world: Buyers,
) -> DataFrame:
    """The purchases of a catalogue made by products(), by the buyers of buyers(), as
    purchases() returns them."""
    weights = day_weights(start, end)
    affiliate_sales = catalogue.agg(F.sum(F.col("n") * F.col("affiliate_share"))).first()[0]
    affiliate_pool = pool_for_distinct(
        max(1.0, sizes.affiliates - sizes.producers), max(1.0, affiliate_sales), skew=2.0
    )
    origin_pool = pool_for_distinct(sizes.origins, sizes.rows, skew=3.0)
    origin_digits = max(4, math.ceil(math.log(max(origin_pool, 2), 16)))

    key = F.col("purchase_key")

    def u(stream: str) -> Column:
        return uniform(seed, stream, key)

    is_affiliate_sale = u("affiliate_sale") < F.col("affiliate_share")
    commission = F.when(
        is_affiliate_sale & (u("zero_commission") >= ZERO_COMMISSION_SHARE),
        F.col("commission_rate"),
    ).otherwise(F.lit(0.0))
    origin_index = skewed_index(u("origin"), origin_pool, 3.0)
    # An odd multiplier permutes codes modulo a power of 16, so distinct origins keep distinct codes.
    origin_code = F.pmod(origin_index * 40503 + 12345, F.lit(16**origin_digits))
    hour_slots = inverse_cdf_table(spark, HOUR_FACTOR, HOUR_SLOTS, "hour")
    creation_second = F.col(s.PRODUCT_CREATION_DATE).cast("long")
    start_second = F.unix_timestamp(F.lit(f"{start} 00:00:00"))
    drawn_second = (
        start_second
        + F.col("day").cast("long") * 86400
        + F.col("hour").cast("long") * 3600
        + F.floor(u("second") * 3600).cast("long")
    )
    # Same-day purchases of a product created that day come after its creation.
    purchase_second = F.when(
        drawn_second < creation_second,
        creation_second + F.floor(u("after_creation") * (86400 - creation_second % 86400)),
    ).otherwise(drawn_second)

    partitions = _partitions(spark, sizes.rows)
    slots = _slots(catalogue, weights, seed, "")
    return (
        _paired(slots, world.purchases(after=False), seed, "", partitions)
        .join(_small(catalogue.drop("first_day", "n"), sizes.products), "product_index")
        .withColumn("hour_slot", F.floor(u("hour") * HOUR_SLOTS).cast("long"))
        .join(F.broadcast(hour_slots.withColumnRenamed("slot", "hour_slot")), "hour_slot")
        .select(
            (F.col("purchase_key") + 1).alias(s.PURCHASE_ID),
            s.PRODUCT_ID,
            F.when(
                is_affiliate_sale,
                skewed_index(u("affiliate"), affiliate_pool, 2.0) * 4 + AFFILIATE_KIND,
            )
            .otherwise(F.col(s.PRODUCER_ID))
            .alias(s.AFFILIATE_ID),
            s.PRODUCER_ID,
            (F.col("buyer_index") * 4 + BUYER_KIND).alias(s.BUYER_ID),
            F.timestamp_seconds(purchase_second).alias(s.PURCHASE_DATE),
            s.PRODUCT_CREATION_DATE,
            s.PRODUCT_CATEGORY,
            s.PRODUCT_NICHE,
            _raw_value(seed, "", key).alias("raw_value"),
            commission.alias(s.COMMISSION),
            pick(u("device"), DEVICE_SHARES).alias(s.PURCHASE_DEVICE),
            F.concat(
                F.lit("Origin "), F.lpad(F.lower(F.hex(origin_code)), origin_digits, "0")
            ).alias(s.PURCHASE_ORIGIN),
            (uniform(seed, "social", origin_index) < SOCIAL_ORIGIN_SHARE)
            .cast("int")
            .alias(s.IS_SOCIAL),
        )
    )


def purchases_after(
    spark: SparkSession,
    catalogue: DataFrame,
    seed: int,
    start: dt.date,
    end: dt.date,
    world: Buyers,
) -> DataFrame:
    """(buyer_index, month, product_category, raw_value): the simulated purchases after the
    period, never written. Every product of the catalogue is on sale and keeps its rate of the period;
    no product is added."""
    after = world.purchases(after=True)
    count = after.count()
    horizon = day_weights(start, start + dt.timedelta(days=world.horizon_days - 1))
    after_weights = horizon[world.period_days :]
    if count == 0:
        return after.select(
            "buyer_index",
            F.lit("").alias("month"),
            F.lit("").alias(s.PRODUCT_CATEGORY),
            F.lit(0.0).alias("raw_value"),
        ).limit(0)
    rate = F.col("n") / (1.0 - F.col("cdf_before"))
    total_rate, products = catalogue.agg(F.sum(rate), F.count(F.lit(1))).first()
    shares = catalogue.withColumn(
        "n",
        F.floor(
            rate * (count / total_rate) + uniform(seed, "after:rounding", F.col("product_index"))
        ).cast("long"),
    )
    shares = (
        _summing_to(shares, count)
        .where(F.col("n") > 0)
        .withColumn("first_day", F.lit(0))
        .withColumn("cdf_before", F.lit(0.0))
    )
    partitions = _partitions(spark, count)
    slots = _slots(shares, after_weights, seed, "after:")
    month = F.date_format(F.date_add(F.lit(end + dt.timedelta(days=1)), F.col("day")), "yyyy-MM")
    return (
        _paired(slots, after, seed, "after:", partitions)
        .join(
            _small(catalogue.select("product_index", "base_price", s.PRODUCT_CATEGORY), products),
            "product_index",
        )
        .select(
            "buyer_index",
            month.alias("month"),
            s.PRODUCT_CATEGORY,
            _raw_value(seed, "after:", F.col("purchase_key")).alias("raw_value"),
        )
    )


@dataclass(frozen=True)
class Moments:
    """The raw values' mean, population sd and minimum: what turns them into the export's
    z-scores and the pipeline's relative units ((raw - minimum) / sd)."""

    mean: float
    std: float
    minimum: float

    @classmethod
    def of(cls, rows: DataFrame) -> Moments:
        got = rows.agg(F.mean("raw_value"), F.stddev_pop("raw_value"), F.min("raw_value")).first()
        return cls(float(got[0]), float(got[1] or 1.0), float(got[2]))

    def relative(self, raw: Column) -> Column:
        """A raw value in relative units: z - min(z) of the export's z-scores."""
        return (raw - self.minimum) / self.std


def standardised(rows: DataFrame, moments: Moments | None = None) -> DataFrame:
    """Rows with purchase_value = z-score of raw_value over all rows, as in the real export."""
    moments = moments or Moments.of(rows)
    return rows.withColumn(
        s.PURCHASE_VALUE, (F.col("raw_value") - moments.mean) / moments.std
    ).select(*[name for name, _ in s.PURCHASE_FIELDS])


def after_period_truth(after: DataFrame, moments: Moments, months_after: int) -> dict[str, Any]:
    """The simulated months after the period: purchases and value in relative units, the
    units the pipeline reports a generated log in."""
    # One row per month and category: the months' totals are their sums.
    by_category = (
        after.groupBy("month", s.PRODUCT_CATEGORY)
        .agg(
            F.count(F.lit(1)).alias("purchases"),
            F.sum(moments.relative(F.col("raw_value"))).alias("value"),
        )
        .toPandas()
        .sort_values(["month", s.PRODUCT_CATEGORY])
    )
    monthly = by_category.groupby("month", as_index=False)[["purchases", "value"]].sum()
    return {
        "months_after": months_after,
        "value_unit": RELATIVE_UNIT,
        "months": [
            {"month": r.month, "purchases": int(r.purchases), "value": float(r.value)}
            for r in monthly.itertuples()
        ],
        "categories": [
            {"month": r.month, "category": r.product_category, "value": float(r.value)}
            for r in by_category.itertuples()
        ],
        "note": "every product of the period stays on sale at its rate; no product is added",
    }


def truth_buyers(world: Buyers, after: DataFrame, moments: Moments) -> DataFrame:
    """Per written buyer: its purchases and their value (relative units) after the period,
    and whether it was still active at the period's end."""
    spent = after.groupBy("buyer_index").agg(
        F.sum(moments.relative(F.col("raw_value"))).alias("value_after")
    )
    return (
        world.table.where("written")
        .join(spent, "buyer_index", "left")
        .select(
            (F.col("buyer_index") * 4 + BUYER_KIND).alias(s.BUYER_ID),
            F.size(F.filter("purchases", lambda t: t >= world.period_days)).alias(
                "purchases_after"
            ),
            F.coalesce("value_after", F.lit(0.0)).alias("value_after"),
            "active_at_end",
        )
    )


def with_defects(clean: DataFrame, rate: float, seed: int, end: dt.date) -> DataFrame:
    """The known export defects, each on about `rate` of the rows; adds a `defect` column.

    Kinds are disjoint slices of one draw, so a row carries at most one; a duplicate is an
    extra copy of a row (the copy is marked). Malformed lines only take effect in CSV output.
    """
    key = F.col(s.PURCHASE_ID)
    draw = uniform(seed, "defect", key)
    defect = F.lit(None).cast("string")
    for k, name in reversed(list(enumerate(DEFECT_KINDS))):
        defect = F.when((draw >= k * rate) & (draw < (k + 1) * rate), F.lit(name)).otherwise(defect)
    days = (1 + F.floor(uniform(seed, "defect_days", key) * 30)).cast("long") * 86400
    date = F.col(s.PURCHASE_DATE)
    second_of_day = date.cast("long") % 86400
    end_second = F.unix_timestamp(F.lit(f"{end} 00:00:00"))
    placeholder = F.to_timestamp(F.lit(f"{end - dt.timedelta(days=4)} 12:00:00"))

    def is_(name: str) -> Column:
        return F.col("defect") == name

    changed = {
        s.PURCHASE_DATE: F.when(is_("placeholder_burst"), placeholder)
        .when(is_("outside_period"), F.timestamp_seconds(end_second + days + second_of_day))
        .otherwise(date),
        s.PRODUCT_CREATION_DATE: F.when(
            is_("purchase_before_creation"), F.timestamp_seconds(date.cast("long") + days)
        ).otherwise(F.col(s.PRODUCT_CREATION_DATE)),
        s.COMMISSION: F.when(is_("placeholder_burst"), F.lit(None).cast(DoubleType()))
        .when(is_("commission_invalid"), 100.0 + days / 86400)
        .when(is_("direct_sale_with_commission"), F.greatest(F.col(s.COMMISSION), F.lit(10.0)))
        .otherwise(F.col(s.COMMISSION)),
        s.AFFILIATE_ID: F.when(is_("direct_sale_with_commission"), F.col(s.PRODUCER_ID)).otherwise(
            F.col(s.AFFILIATE_ID)
        ),
    }
    marked = clean.withColumn("defect", defect)
    defective = marked.select(
        *[changed.get(c, F.col(c)).alias(c) for c in clean.columns],
        F.when(~is_("duplicate_purchase_id"), F.col("defect")).alias("defect"),
    )
    copies = marked.where(is_("duplicate_purchase_id")).select(*clean.columns, "defect")
    return defective.unionByName(copies)


def export_lines(
    rows: DataFrame, separator: str, seed: int, pandas_index: bool, include_venda: bool
) -> tuple[str, DataFrame]:
    """(header, lines): each row as one text line in the real CSV export's style, with its order.

    Lines are built as text rather than with the CSV writer so that malformed lines (a field
    missing, a timestamp that does not exist) can be written as the real export has them.
    """
    fmt_ts = "yyyy-MM-dd HH:mm:ss"

    def text(col: Column) -> Column:
        value = F.coalesce(col, F.lit(""))
        needs_quotes = value.contains(separator) | value.contains('"')
        return F.when(
            needs_quotes,
            F.concat(F.lit('"'), F.replace(value, F.lit('"'), F.lit('""')), F.lit('"')),
        ).otherwise(value)

    fields = {
        s.PURCHASE_ID: F.col(s.PURCHASE_ID).cast("string"),
        s.PRODUCT_ID: F.col(s.PRODUCT_ID).cast("string"),
        s.AFFILIATE_ID: F.col(s.AFFILIATE_ID).cast("string"),
        s.PRODUCER_ID: F.col(s.PRODUCER_ID).cast("string"),
        s.BUYER_ID: F.col(s.BUYER_ID).cast("string"),
        s.PURCHASE_DATE: F.date_format(s.PURCHASE_DATE, fmt_ts),
        s.PRODUCT_CREATION_DATE: F.date_format(s.PRODUCT_CREATION_DATE, fmt_ts),
        s.PRODUCT_CATEGORY: F.col(s.PRODUCT_CATEGORY),
        s.PRODUCT_NICHE: F.col(s.PRODUCT_NICHE),
        s.PURCHASE_VALUE: F.format_string("%.10f", s.PURCHASE_VALUE),
        s.COMMISSION: F.col(s.COMMISSION).cast("string"),
        s.PURCHASE_DEVICE: F.col(s.PURCHASE_DEVICE),
        s.PURCHASE_ORIGIN: F.col(s.PURCHASE_ORIGIN),
        # The export writes this integer flag with a decimal comma.
        s.IS_SOCIAL: F.concat(F.col(s.IS_SOCIAL).cast("string"), F.lit(",0")),
    }
    names = [name for name, _ in s.PURCHASE_FIELDS]
    if include_venda:
        fields[s.VENDA] = F.lit("1")
        names.append(s.VENDA)
    if pandas_index:
        fields[""] = (F.col(s.PURCHASE_ID) - 1).cast("string")
        names.insert(0, "")
    malformed = F.col("defect") == "malformed"
    truncate = uniform(seed, "malformed_kind", F.col(s.PURCHASE_ID)) < 0.5
    fields[s.PURCHASE_DATE] = F.when(malformed & ~truncate, F.lit("2016-02-30 25:61:00")).otherwise(
        fields[s.PURCHASE_DATE]
    )
    full = F.concat_ws(separator, *[text(fields[n]) for n in names])
    short = F.concat_ws(separator, *[text(fields[n]) for n in names[:-3]])
    header = separator.join(f'"{n}"' if separator in n else n for n in names)
    return header, rows.select(
        F.col(s.PURCHASE_ID).alias("line_order"),
        F.when(malformed & truncate, short).otherwise(full).alias(header),
    )


def write_export(rows: DataFrame, path: str, gen: GeneratorConfig) -> None:
    """Write rows (with a `defect` column) as the raw export: Parquet, or CSV in the export's style."""
    if gen.format == "parquet":
        table = rows.drop("defect")
        if gen.include_venda:
            table = table.withColumn(s.VENDA, F.lit(1))
        table.coalesce(gen.files).write.mode("overwrite").parquet(path)
        return
    separator = separator_char(gen.separator)
    header, lines = export_lines(rows, separator, gen.seed, gen.pandas_index, gen.include_venda)
    if gen.blank_first_row:
        blank = rows.sparkSession.createDataFrame(
            [(-1, separator * header.count(separator))], ["line_order", header]
        )
        lines = blank.unionByName(lines)
    (
        # An explicit order puts the blank row first and makes files the same on every run.
        lines.repartitionByRange(gen.files, "line_order")
        .sortWithinPartitions("line_order")
        .select(header)
        .write.mode("overwrite")
        .option("header", True)
        # Lines are already quoted; the writer must copy them as they are.
        .option("quote", "\u0000")
        .option("escape", "\u0000")
        .option("sep", "\u0001")
        .option("encoding", gen.encoding)
        .csv(path)
    )


@dataclass(frozen=True)
class Check:
    """One line of the calibration table: a shape target and what the generated data shows."""

    metric: str
    target: str
    generated: float
    ok: bool

    def __post_init__(self) -> None:
        # numpy scalars in, plain Python out, so the table serialises as JSON.
        object.__setattr__(self, "generated", float(self.generated))
        object.__setattr__(self, "ok", bool(self.ok))


def _near(metric: str, target: float, value: float, tolerance: float = 0.10) -> Check:
    ok = abs(value - target) <= tolerance * abs(target)
    return Check(metric, f"{target:,.4g} ±{tolerance:.0%}", value, ok)


def _within(metric: str, low: float, high: float, value: float) -> Check:
    return Check(metric, f"{low:,.4g} to {high:,.4g}", value, low <= value <= high)


def calibration(
    rows: DataFrame, sizes: Sizes, start: dt.date, end: dt.date, expected_per_buyer: float
) -> list[Check]:
    """Shape of the generated (defect-free, standardised) rows against the real sample's.

    Purchases per buyer grow with the period's length (buyers have longer to come back): a
    period as long as the sample's is held to the sample's figure, any other to the planted
    process's expectation (Buyers.expected_per_buyer)."""
    scale = sizes.rows / REAL_ROWS
    sample_long = abs((end - start).days + 1 - REAL_DAYS) <= 3
    per_buyer = REAL_ROWS / REAL_BUYERS if sample_long else expected_per_buyer
    agg = rows.agg(
        F.count(F.lit(1)).alias("rows"),
        F.approx_count_distinct(s.PRODUCER_ID, 0.01).alias("producers"),
        F.approx_count_distinct(s.AFFILIATE_ID, 0.01).alias("affiliates"),
        F.approx_count_distinct(s.BUYER_ID, 0.01).alias("buyers"),
        F.approx_count_distinct(s.PURCHASE_ORIGIN, 0.01).alias("origins"),
        F.avg((F.col(s.PRODUCT_CATEGORY) == "Phisical book").cast("double")).alias("book"),
        F.avg((F.col(s.PRODUCT_CATEGORY) == "Podcast").cast("double")).alias("podcast"),
        F.avg(
            F.col(s.PURCHASE_DEVICE).isin("eReaders", "Desktop", "Smart TV").cast("double")
        ).alias("top_devices"),
        F.avg(s.PURCHASE_VALUE).alias("z_mean"),
        F.stddev_pop(s.PURCHASE_VALUE).alias("z_std"),
        F.min(s.PURCHASE_VALUE).alias("z_min"),
        F.percentile_approx(s.PURCHASE_VALUE, 0.5, 10_000).alias("z_median"),
        F.skewness(s.PURCHASE_VALUE).alias("z_skew"),
        F.avg(s.COMMISSION).alias("commission"),
    ).first()
    # Purchases per product, as a histogram: its size is bounded by the largest product.
    per_product = rows.groupBy(s.PRODUCT_ID).count()
    histogram = per_product.groupBy(F.col("count").alias("n")).count().toPandas()
    histogram = histogram.sort_values("n", ascending=False)
    n_products = int(histogram["count"].sum())
    counts = np.repeat(histogram["n"].to_numpy(), histogram["count"].to_numpy())
    half = int(np.searchsorted(np.cumsum(counts), counts.sum() / 2) + 1)
    monthly = (
        rows.groupBy(F.month(s.PURCHASE_DATE).alias("month"))
        .agg(F.sum(F.col(s.PURCHASE_VALUE) - agg["z_min"]).alias("value"))
        .toPandas()
        .set_index("month")["value"]
    )
    weekday_units = rows.groupBy(F.dayofweek(s.PURCHASE_DATE)).count().toPandas()["count"]
    checks = [
        Check("rows", f"{sizes.rows:,}", agg["rows"], agg["rows"] == sizes.rows),
        _near("products", REAL_PRODUCTS * scale, n_products),
        _near("producers (approx)", REAL_PRODUCERS * scale, agg["producers"]),
        _near("affiliates (approx)", REAL_AFFILIATES * scale, agg["affiliates"]),
        _near("buyers (approx)", sizes.rows / per_buyer, agg["buyers"]),
        _near("origins (approx)", REAL_ORIGINS * scale, agg["origins"]),
        _near("purchases per buyer", per_buyer, agg["rows"] / agg["buyers"]),
        _near("Phisical book share", 0.83, agg["book"]),
        _near("Podcast share", 0.14, agg["podcast"]),
        _within("eReaders+Desktop+Smart TV share", 0.98, 1.0, agg["top_devices"]),
        _near("purchases per product: median", 7, float(np.median(counts))),
        _near("purchases per product: mean", 89, float(counts.mean())),
        _within("purchases per product: max", 10_000 * scale, 99_999 * scale, float(counts.max())),
        _near("products making half of purchases", 238 * scale, half),
        Check("z mean", "0", agg["z_mean"], abs(agg["z_mean"]) < 1e-9),
        Check("z std", "1", agg["z_std"], abs(agg["z_std"] - 1) < 1e-9),
        _near("z min", -0.541, agg["z_min"]),
        _near("z median", -0.35, agg["z_median"]),
        _within("z skewness", 10, math.inf, agg["z_skew"]),
        _near("mean commission %", 7.6, agg["commission"]),
        _within(
            "busiest / quietest weekday units",
            1.1,
            math.inf,
            weekday_units.max() / weekday_units.min(),
        ),
    ]
    if {1, 2, 3} <= set(monthly.index):
        dip = min(monthly[1], monthly[3]) / monthly[2]
        checks.append(_within("February dip: min(Jan, Mar) / Feb value", 1.0, math.inf, dip))
        peak = monthly[3] / monthly.drop(3).max()
        checks.append(_within("March peak: Mar / best other month", 1.0, math.inf, peak))
    return checks


def calibration_table(checks: list[Check]) -> str:
    width = max(len(c.metric) for c in checks)
    lines = [f"{'metric':<{width}}  {'target':>22}  {'generated':>14}  ok"]
    for c in checks:
        lines.append(
            f"{c.metric:<{width}}  {c.target:>22}  {c.generated:>14,.4g}  {'yes' if c.ok else 'NO'}"
        )
    return "\n".join(lines)
