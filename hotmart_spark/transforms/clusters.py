"""Q3: producer segments, by k-means on producer features, with labels read off each profile."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from sklearn.cluster import KMeans

from hotmart_spark import schema as s
from hotmart_spark.transforms.producers import distinct_count, producer_measures
from hotmart_spark.transforms.shares import with_shares
from hotmart_spark.transforms.trends import period_halves

log = logging.getLogger(__name__)

# Feature columns; the skewed ones enter the model as log(1 + x).
SKEWED = ("revenue", "units", "products", "niches", "avg_value_per_sale")
LINEAR = ("affiliate_units_share", "months_active", "growth_index")
FEATURES = SKEWED + LINEAR


@dataclass(frozen=True)
class Clustering:
    """Producers with their cluster, the silhouette of every k tried, and the k chosen."""

    assigned: DataFrame
    scores: list[tuple[int, float]]
    k: int


def producer_features(purchases: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """One row per producer: the producers mart's measures plus niches and growth_index.

    growth_index = (second half value - first half value) / (their sum), from -1 (sold only
    in the first half) to 1 (only in the second); halves as in `trends.period_halves`.
    """
    in_first, in_second = period_halves(start, end)
    first = F.when(in_first, F.col("value")).otherwise(0.0)
    second = F.when(in_second, F.col("value")).otherwise(0.0)
    # The mart's measures and these in one aggregate: one pass over the purchases, no join.
    measured = purchases.groupBy(s.PRODUCER_ID).agg(
        *producer_measures(),
        distinct_count(s.PRODUCT_NICHE).alias("niches"),
        F.sum(first).alias("_first"),
        F.sum(second).alias("_second"),
    )
    growth = F.when(
        F.col("_first") + F.col("_second") > 0,
        (F.col("_second") - F.col("_first")) / (F.col("_first") + F.col("_second")),
    ).otherwise(0.0)
    return measured.withColumn("growth_index", growth).select(s.PRODUCER_ID, *FEATURES)


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
    """Per cluster: producers, value share and the mean of every raw feature."""
    profiles = assigned.groupBy("cluster").agg(
        F.count(F.lit(1)).alias("producers"),
        F.sum("revenue").alias("value"),
        *[F.avg(c).alias(f"mean_{c}") for c in FEATURES],
    )
    return with_shares(profiles, {"producers": "producer_share", "value": "value_share"})


def label(profile: dict[str, float], overall: dict[str, float]) -> str:
    """A readable name from a cluster's means against all producers' means.

    Size: mean revenue at least 1.5 times the producers' mean is large, at most half is small.
    Channel: at least half of units through affiliates is affiliate-driven, at most 10% direct.
    Trend: growth_index at least 0.2 is growing, at most -0.2 shrinking.
    """
    ratio = profile["mean_revenue"] / overall["revenue"] if overall["revenue"] else 1.0
    size = "large" if ratio >= 1.5 else "small" if ratio <= 0.5 else "mid-size"
    share = profile["mean_affiliate_units_share"]
    channel = "affiliate-driven" if share >= 0.5 else "direct" if share <= 0.1 else "mixed channels"
    growth = profile["mean_growth_index"]
    trend = "growing" if growth >= 0.2 else "shrinking" if growth <= -0.2 else "steady"
    return f"{size}, {channel}, {trend}"


def unique_labels(labels: list[str]) -> list[str]:
    """Labels made distinct by numbering repeats: "small, direct, steady (2)"."""
    seen: dict[str, int] = {}
    result = []
    for name in labels:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return result
