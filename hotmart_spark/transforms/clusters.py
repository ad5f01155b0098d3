"""Q3: producer segments, by k-means on producer features, with labels read off each profile."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.ml import Pipeline
from pyspark.ml.clustering import KMeans, KMeansModel
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hotmart_spark import io
from hotmart_spark import schema as s
from hotmart_spark.transforms.producers import distinct_count, producer_table
from hotmart_spark.transforms.shares import with_shares
from hotmart_spark.transforms.trends import period_halves

log = logging.getLogger(__name__)

# Feature columns; the skewed ones enter the model as log(1 + x).
SKEWED = ("revenue", "units", "products", "niches", "avg_value_per_sale")
LINEAR = ("affiliate_units_share", "months_active", "growth_index")
FEATURES = SKEWED + LINEAR
CONCURRENT_FITS = 4


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
    extra = purchases.groupBy(s.PRODUCER_ID).agg(
        distinct_count(s.PRODUCT_NICHE).alias("niches"),
        F.sum(first).alias("_first"),
        F.sum(second).alias("_second"),
    )
    growth = F.when(
        F.col("_first") + F.col("_second") > 0,
        (F.col("_second") - F.col("_first")) / (F.col("_first") + F.col("_second")),
    ).otherwise(0.0)
    return (
        producer_table(purchases)
        .join(extra, s.PRODUCER_ID)
        .withColumn("growth_index", growth)
        .select(s.PRODUCER_ID, *FEATURES)
    )


def _scaling() -> Pipeline:
    return Pipeline(
        stages=[
            VectorAssembler(inputCols=[f"_model_{c}" for c in FEATURES], outputCol="_raw"),
            StandardScaler(inputCol="_raw", outputCol="_scaled", withMean=True, withStd=True),
        ]
    )


def cluster_producers(features: DataFrame, k_range: Sequence[int], seed: int) -> Clustering:
    """k-means for every k in k_range that the producers allow; keeps the best silhouette."""
    n = features.count()
    usable = [k for k in k_range if 2 <= k < n]
    if not usable:
        log.warning(
            "only %d producers: too few for the %s clusters asked for; all in one cluster",
            n,
            f"{min(k_range)}-{max(k_range)}",
        )
        return Clustering(features.withColumn("cluster", F.lit(0)), [], 1)
    model_input = features.select(
        "*",
        *[F.log1p(F.col(c).cast("double")).alias(f"_model_{c}") for c in SKEWED],
        *[F.col(c).cast("double").alias(f"_model_{c}") for c in LINEAR],
    )
    # The scaling does not depend on k: fitted once, and its output kept for every k's fits.
    # One partition: every k-means iteration and silhouette is a Spark job over a table of
    # producers, whose cost is its tasks, not its rows; and k-means|| seeds per partition, so
    # one partition also gives the same clusters however the input was split.
    scaled = (
        _scaling()
        .fit(model_input)
        .transform(model_input)
        .coalesce(1)
        .sortWithinPartitions(s.PRODUCER_ID)
        .cache()
    )
    try:

        def fit(k: int) -> tuple[int, float, KMeansModel]:
            model = KMeans(
                k=k, seed=seed, featuresCol="_scaled", predictionCol="cluster", maxIter=50
            ).fit(scaled)
            evaluator = ClusteringEvaluator(featuresCol="_scaled", predictionCol="cluster")
            return k, float(evaluator.evaluate(model.transform(scaled))), model

        # A fit is a chain of one-task jobs with the driver planning between them: several at
        # once keep both cores of a small machine busy. Each k's result is its own.
        with ThreadPoolExecutor(CONCURRENT_FITS, "kmeans") as pool:
            fitted = list(pool.map(io.in_callers_context(features.sparkSession, fit), usable))
        scores = [(k, silhouette) for k, silhouette, _ in fitted]
        # The best silhouette; the smallest k among equals.
        k, _, model = max(fitted, key=lambda f: (f[1], -f[0]))
        # Read after `scaled` is released: the scaled input is derived again from `features`,
        # which the caller keeps cached.
        assigned = model.transform(scaled).select(*features.columns, "cluster")
        return Clustering(assigned, scores, k)
    finally:
        scaled.unpersist()


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
