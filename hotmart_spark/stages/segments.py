"""Segments (Q3): buyer RFM scores and named segments; producer clusters, from clean purchases."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from hotmart_spark.config import Config
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    record_in_manifest,
    write,
)
from hotmart_spark.tables import persisted
from hotmart_spark.threads import Pool
from hotmart_spark.transforms import clusters, rfm
from hotmart_spark.transforms.revenue import valued_purchases

log = logging.getLogger("hotmart_spark.segments")


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    out = output_root(config)
    # Not kept, as in aggregates: reading the few columns each step needs from Parquet is
    # faster than building an in-memory copy of every column.
    purchases, scale, z_min = valued_purchases(
        read(spark, config.paths.input, "clean"), config.value
    )
    # Buyers and producers are segmented independently: side by side, their small jobs
    # share the cores.
    with Pool(1, "producer-clusters", spark) as pool:
        clusters_done = pool.submit(producer_clusters, spark, purchases, config)
        reference = rfm.reference_day(purchases)
        tiers = list(config.rfm.frequency_tiers)
        with persisted(rfm.buyer_rfm(purchases, reference)) as values:
            cuts = rfm.recency_cuts(values)
            scored = rfm.with_scores(values, cuts, tiers).withColumn(
                "segment", rfm.segment(config.rfm.segments)
            )
            write(scored, config, "marts/buyer_rfm")
        buyer_rfm = read(spark, out, "marts/buyer_rfm")
        write(rfm.segment_categories(buyer_rfm, purchases), config, "marts/rfm_segment_categories")
        categories = read(spark, out, "marts/rfm_segment_categories")
        write(
            rfm.segment_summary(buyer_rfm).join(rfm.top_by_lift(categories), "segment", "left"),
            config,
            "marts/rfm_segments",
        )
        clustered = clusters_done.result()
    segments = rfm_insights(spark, out)
    publish_insights(
        config,
        "segments",
        {
            "value_unit": scale.unit,
            "reference_day": reference.isoformat(),
            "recency_cuts": cuts,
            "frequency_tiers": tiers,
            "rfm": segments,
            **clustered,
        },
    )
    record_in_manifest(
        config,
        "segments",
        {
            "input": config.paths.input,
            "z_min": z_min,
            "value_unit": scale.unit,
            "reference_day": reference.isoformat(),
            "recency_cuts": cuts,
            "frequency_tiers": tiers,
            "cluster_silhouettes": clustered["cluster_silhouettes"],
            "timings": {"total_s": round(time.time() - started, 2)},
        },
    )
    for r in segments:
        log.info(
            "%-20s %9d buyers (%5.1f%%), %5.1f%% of value",
            r["segment"],
            r["buyers"],
            100 * r["buyer_share"],
            100 * r["value_share"],
        )
    log.info(
        "recency cuts %s days; frequency tiers %s purchases",
        "/".join(f"{c:g}" for c in cuts),
        "/".join(str(t) for t in tiers),
    )
    log.info(
        "silhouette by k: %s; k = %d, %s structure",
        ", ".join(f"{k}: {v:.3f}" for k, v in clustered["cluster_silhouettes"].items()),
        clustered["clusters_k"],
        clustered["cluster_structure"],
    )
    for c in clustered["producer_clusters"]:
        log.info(
            "cluster %d: %-40s %6d producers, %5.1f%% of value",
            c["cluster"],
            c["label"],
            c["producers"],
            100 * c["value_share"],
        )
    return {"reference_day": reference, "recency_cuts": cuts, "rfm": segments, **clustered}


def rfm_insights(spark: SparkSession, out: str) -> list[dict[str, Any]]:
    """Q3's buyer segments, most value first: size, shares, mean purchases and the
    categories they buy more than buyers overall."""
    summary = read(spark, out, "marts/rfm_segments").orderBy(F.desc("value")).collect()
    return [
        {
            "segment": r["segment"],
            "buyers": r["buyers"],
            "buyer_share": r["buyer_share"],
            "value_share": r["value_share"],
            "mean_frequency": r["mean_frequency"],
            "top_categories": list(r["top_categories"] or []),
            "top_category_lifts": list(r["top_category_lifts"] or []),
        }
        for r in summary
    ]


def producer_clusters(spark: SparkSession, purchases: DataFrame, config: Config) -> dict[str, Any]:
    """Cluster producers, label each cluster from its profile, write the three tables."""
    categories = clusters.largest_categories(purchases)
    features = clusters.producer_features(purchases, categories)
    with persisted(features) as features:
        k_range = range(config.clusters.k_min, config.clusters.k_max + 1)
        result = clusters.cluster_producers(
            features, k_range, config.clusters.seed, config.clusters.fit_max_producers
        )
        profile_table = clusters.cluster_profiles(result.assigned)
        profiles = profile_table.orderBy("cluster").collect()
        overall = clusters.overall_medians(features)
        labels = clusters.unique_labels(
            [clusters.label(p.asDict(), overall, categories) for p in profiles]
        )
        named = spark.createDataFrame(
            [(p["cluster"], name) for p, name in zip(profiles, labels, strict=True)],
            ["cluster", "label"],
        )
        write(
            result.assigned.join(F.broadcast(named), "cluster"), config, "marts/producer_clusters"
        )
    # The profiles (k rows) were collected for the labels; they are written from those rows.
    labelled = [{**p.asDict(), "label": name} for p, name in zip(profiles, labels, strict=True)]
    write(
        spark.createDataFrame(
            labelled,
            StructType([*profile_table.schema.fields, StructField("label", StringType())]),
        ),
        config,
        "marts/producer_cluster_profiles",
    )
    scores = spark.createDataFrame(result.scores, "k int, silhouette double")
    write(scores, config, "marts/producer_cluster_silhouettes")
    silhouettes = dict(result.scores)
    return {
        "clusters_k": result.k,
        "cluster_silhouettes": {str(k): score for k, score in result.scores},
        "cluster_structure": clusters.structure_in_words(silhouettes[result.k])
        if result.k in silhouettes
        else None,
        "cluster_categories": categories,
        "producer_clusters": [
            {
                "cluster": p["cluster"],
                "label": name,
                "producers": p["producers"],
                "value_share": p["value_share"],
            }
            for p, name in zip(profiles, labels, strict=True)
        ],
    }


STAGE = Stage("segments", reads=("clean",), run=run)
