"""Q3: producer segments, by k-means on producer behaviour, labelled from each cluster's medians."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from sklearn.cluster import KMeans

from hotmart_spark import schema as s
from hotmart_spark.transforms.producers import is_affiliate_sale
from hotmart_spark.transforms.shares import with_shares

log = logging.getLogger(__name__)

# Behaviour, with size once (units: not shifted by the unknown lowest price as value is).
# The skewed ones enter the model as log(1 + x).
CATEGORY_FEATURES = 3
CATEGORY_SHARES = tuple(f"category_share_{i}" for i in range(1, CATEGORY_FEATURES + 1))
SKEWED = ("units", "avg_value_per_sale")
LINEAR = ("affiliate_units_share", *CATEGORY_SHARES, "growth_index")
FEATURES = SKEWED + LINEAR
# Kaufman and Rousseeuw (1990), for the mean silhouette of the chosen k.
STRUCTURE_WORDS = ((0.7, "strong"), (0.5, "reasonable"), (0.25, "weak"))


@dataclass(frozen=True)
class Clustering:
    """Producers with their cluster, the silhouette of every k tried, and the k chosen."""

    assigned: DataFrame
    scores: list[tuple[int, float]]
    k: int


def largest_categories(purchases: DataFrame, n: int = CATEGORY_FEATURES) -> list[str]:
    """The platform's n categories with the most units (ties by name)."""
    rows = (
        purchases.groupBy(s.PRODUCT_CATEGORY)
        .agg(F.count(F.lit(1)).alias("units"))
        .orderBy(F.desc("units"), s.PRODUCT_CATEGORY)
        .limit(n)
        .collect()
    )
    return [r[s.PRODUCT_CATEGORY] for r in rows]


def producer_features(purchases: DataFrame, categories: Sequence[str]) -> DataFrame:
    """One row per producer: revenue (for value shares, not a feature) and FEATURES.

    category_share_i is the share of the producer's units in the platform's i-th largest
    category (`largest_categories`; 0 where there are fewer). growth_index says where the
    producer's units sit in its own active days, first to last sale day: with mean sale
    day m, (2 m - first - last) / (last - first), from -1 (all on its first day) to 1 (all
    on its last); 0 for even sales or a single day, 1/3 for sales rising linearly from
    zero. Its own days, not the period's: a producer who started in May is not growing
    for having sold nothing before.
    """
    day = F.datediff(F.to_date(s.PURCHASE_DATE), F.lit("1970-01-01"))
    shares = [
        F.avg((F.col(s.PRODUCT_CATEGORY) == F.lit(categories[i])).cast("double"))
        if i < len(categories)
        else F.lit(0.0)
        for i in range(CATEGORY_FEATURES)
    ]
    measured = purchases.groupBy(s.PRODUCER_ID).agg(
        F.sum("value").alias("revenue"),
        F.count(F.lit(1)).alias("units"),
        F.avg("value").alias("avg_value_per_sale"),
        F.avg(is_affiliate_sale().cast("double")).alias("affiliate_units_share"),
        *[share.alias(name) for share, name in zip(shares, CATEGORY_SHARES, strict=True)],
        F.avg(day).alias("_mean_day"),
        F.min(day).alias("_first"),
        F.max(day).alias("_last"),
    )
    span = F.col("_last") - F.col("_first")
    growth = F.when(
        span > 0, (2 * F.col("_mean_day") - F.col("_first") - F.col("_last")) / span
    ).otherwise(0.0)
    return measured.withColumn("growth_index", growth).select(s.PRODUCER_ID, "revenue", *FEATURES)


def structure_in_words(silhouette: float) -> str:
    """The strength of a clustering by its mean silhouette (Kaufman and Rousseeuw 1990)."""
    for floor, words in STRUCTURE_WORDS:
        if silhouette > floor:
            return words
    return "no substantial"


def cluster_producers(
    features: DataFrame, k_range: Sequence[int], seed: int, fit_max_producers: int
) -> Clustering:
    """k-means for every k in k_range that the producers allow; keeps the best silhouette.

    Features are standardised over all producers (mean 0, sample standard deviation 1). The
    centroids and silhouettes come from scikit-learn on at most fit_max_producers of them, the
    same ones on every run (the smallest hashes of producer_id and seed); every producer then
    joins its nearest centroid in Spark.
    """
    n = features.count()
    usable = [k for k in k_range if 2 <= k < n]
    if not usable:
        log.warning(
            "only %d producers: too few for the %s clusters asked for; all in one cluster",
            n,
            f"{min(k_range)}-{max(k_range)}",
        )
        return Clustering(features.withColumn("cluster", F.lit(0)), [], 1)
    modelled = {
        **{c: F.log1p(F.col(c).cast("double")) for c in SKEWED},
        **{c: F.col(c).cast("double") for c in LINEAR},
    }
    stats = features.agg(
        *[F.avg(x).alias(f"mean_{c}") for c, x in modelled.items()],
        *[F.stddev_samp(x).alias(f"std_{c}") for c, x in modelled.items()],
    ).first()
    # A feature equal for every producer tells them nothing apart: it scales to 0, as in
    # Spark ML's StandardScaler.
    scaled = [
        ((x - stats[f"mean_{c}"]) / stats[f"std_{c}"] if stats[f"std_{c}"] else F.lit(0.0))
        for c, x in modelled.items()
    ]
    # Spark ML's KMeans on a table this size is a chain of one-task jobs and JIT compiling
    # (on 1.6M rows' producers, alone: 45 s and about 100 CPU seconds; in the pipeline about
    # 7 s and 20 CPU seconds more than this). A bounded sample on the driver is fitted in
    # about a second, and stays bounded as producers grow.
    points = (
        features.orderBy(F.xxhash64(s.PRODUCER_ID, F.lit(seed)), s.PRODUCER_ID)
        .select(*[x.alias(c) for c, x in zip(FEATURES, scaled, strict=True)])
        .limit(fit_max_producers)
        .toPandas()
        .to_numpy()
    )
    if len(points) < n:
        log.info("k-means fitted on %d of %d producers", len(points), n)
    fitted = []
    for k in usable:
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(points)
        fitted.append((k, silhouette(points, model.labels_), model.cluster_centers_))
    scores = [(k, score) for k, score, _ in fitted]
    # The best silhouette; the smallest k among equals.
    k, _, centers = max(fitted, key=lambda f: (f[1], -f[0]))
    return Clustering(features.withColumn("cluster", nearest_centroid(scaled, centers)), scores, k)


def silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    """The mean silhouette with squared Euclidean distances, the distance k-means minimises:
    what scikit-learn's silhouette_score(metric="sqeuclidean") gives, without its n x n
    distances (5 s for 8,000 producers and seven k). The mean squared distance from x to a
    cluster's points is |x|^2 - 2 x.mean + mean |y|^2; to its own cluster's other points, that
    times n / (n - 1). A producer alone in its cluster scores 0."""
    n, k = len(points), int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    norms = (points**2).sum(axis=1)
    means = np.stack([points[labels == j].mean(axis=0) for j in range(k)])
    mean_norms = np.bincount(labels, weights=norms, minlength=k) / sizes
    to_cluster = norms[:, None] - 2 * points @ means.T + mean_norms[None, :]
    rows = np.arange(n)
    own_size = sizes[labels]
    alone = own_size == 1
    a = to_cluster[rows, labels] * own_size / np.where(alone, 1, own_size - 1)
    to_cluster[rows, labels] = np.inf
    b = to_cluster.min(axis=1)
    scale = np.maximum(a, b)
    scores = np.where(alone | (scale <= 0), 0.0, (b - a) / np.where(scale > 0, scale, 1.0))
    return float(scores.mean())


def nearest_centroid(point: Sequence[Column], centers: Sequence[Sequence[float]]) -> Column:
    """The number of the center nearest to the point (squared Euclidean distance); the lowest
    number among equals."""
    distances = [
        sum((x - float(c)) ** 2 for x, c in zip(point, center, strict=True)) for center in centers
    ]
    return F.least(
        *[F.struct(d.alias("d"), F.lit(j).alias("cluster")) for j, d in enumerate(distances)]
    )["cluster"]


def cluster_profiles(assigned: DataFrame) -> DataFrame:
    """Per cluster: producers, value share and the median of every feature (the producer
    features are skewed: a mean is pulled by a few large producers)."""
    profiles = assigned.groupBy("cluster").agg(
        F.count(F.lit(1)).alias("producers"),
        F.sum("revenue").alias("value"),
        *[F.percentile_approx(c, 0.5, 10_000).alias(f"median_{c}") for c in FEATURES],
    )
    return with_shares(profiles, {"producers": "producer_share", "value": "value_share"})


def overall_medians(features: DataFrame) -> dict[str, float]:
    """Every feature's median over all producers."""
    row = features.agg(*[F.percentile_approx(c, 0.5, 10_000).alias(c) for c in FEATURES]).first()
    return {c: float(row[c]) for c in FEATURES}


def label(profile: dict[str, float], overall: dict[str, float], categories: Sequence[str]) -> str:
    """A readable name from a cluster's medians against all producers' medians.

    Size: median units at least twice the producers' median is large, at most half small.
    Channel: a median of at least half of units through affiliates is affiliate-driven, at
    most 10% direct. Category: "mostly <category>" when the median producer sells at least
    half its units in it. Price: median value per sale at least 1.5 times the producers'
    median is high-priced, at most 2/3 low-priced (in relative units a ranking of prices,
    not their ratio). Trend: growth_index at least 0.15 is growing, at most -0.15 shrinking.
    """

    def ratio(feature: str) -> float:
        whole = overall[feature]
        return profile[f"median_{feature}"] / whole if whole else 1.0

    size = "large" if ratio("units") >= 2 else "small" if ratio("units") <= 0.5 else "mid-size"
    share = profile["median_affiliate_units_share"]
    channel = "affiliate-driven" if share >= 0.5 else "direct" if share <= 0.1 else "mixed channels"
    mostly = [
        name
        for name, column in zip(categories, CATEGORY_SHARES, strict=False)
        if profile[f"median_{column}"] >= 0.5
    ]
    category = f"mostly {mostly[0]}" if mostly else "mixed categories"
    price_ratio = ratio("avg_value_per_sale")
    price = (
        "high-priced"
        if price_ratio >= 1.5
        else "low-priced"
        if price_ratio <= 2 / 3
        else "mid-priced"
    )
    growth = profile["median_growth_index"]
    trend = "growing" if growth >= 0.15 else "shrinking" if growth <= -0.15 else "steady"
    return f"{size}, {channel}, {category}, {price}, {trend}"


def unique_labels(labels: list[str]) -> list[str]:
    """Labels made distinct by numbering repeats: "small, direct, steady (2)"."""
    seen: dict[str, int] = {}
    result = []
    for name in labels:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return result
