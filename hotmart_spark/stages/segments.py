"""Segments (Q3): buyer RFM scores and named segments, buyer lifetime value (BG/NBD and
Gamma-Gamma); producer clusters, from clean purchases."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from hotmart_spark import schema as sch
from hotmart_spark.analysis import lifetime as ltv
from hotmart_spark.config import Config
from hotmart_spark.errors import NotEnoughData
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    read_insights,
    record_in_manifest,
    write,
)
from hotmart_spark.tables import persisted
from hotmart_spark.threads import Pool
from hotmart_spark.transforms import clusters, lifetime, rfm
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
        lifetimes = buyer_lifetimes(spark, purchases, buyer_rfm, reference, config)
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
            "lifetime": lifetimes,
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
            "lifetime_model": {
                key: lifetimes.get(key) for key in ("purchases_model", "spend_model", "patterns")
            },
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
    if "skipped" in lifetimes:
        log.info("lifetime value not estimated: %s", lifetimes["skipped"])
    else:
        error = lifetimes["holdout"].get("total_error")
        log.info(
            "lifetime: BG/NBD %s on %d patterns; the holdout's total %s",
            ", ".join(f"{k} {v:.3g}" for k, v in lifetimes["purchases_model"].items()),
            lifetimes["patterns"],
            "not checked" if error is None else f"off by {error:+.1%}",
        )
    return {"reference_day": reference, "recency_cuts": cuts, "rfm": segments, **clustered}


def months_later(day: dt.date, months: int) -> dt.date:
    return (pd.Timestamp(day) + pd.DateOffset(months=months)).date()


def buyer_lifetimes(
    spark: SparkSession,
    purchases: DataFrame,
    buyer_rfm: DataFrame,
    reference: dt.date,
    config: Config,
) -> dict[str, Any]:
    """Fit BG/NBD and Gamma-Gamma on the collapsed tables, check them on the period's last
    months (and on the planted truth of a generated input), write the buyer mart and its
    summaries; returns insights' lifetime section (or why there is none)."""
    settings = config.lifetime
    horizon_end = months_later(reference, settings.horizon_months)
    holdout_start = months_later(reference, -settings.holdout_months)
    with persisted(lifetime.purchase_days(purchases)) as days:
        try:
            holdout = holdout_check(days, holdout_start, reference)
            with persisted(lifetime.histories(days, reference)) as history:
                patterns = lifetime.patterns(history).toPandas()
                purchases_model = ltv.fit_purchases(patterns)
                spend_table = lifetime.spend_patterns(history).toPandas()
                spend_model = ltv.fit_spend(spend_table)
                horizon_days = (horizon_end - reference).days
                predicted = ltv.predicted(patterns, purchases_model, horizon_days)
                write(spark.createDataFrame(predicted), config, "marts/lifetime_patterns")
                per_pattern = read(spark, output_root(config), "marts/lifetime_patterns").select(
                    *lifetime.PATTERN, "expected_purchase_days", "p_alive"
                )
                p, q, v = (spend_model.parameters[k] for k in ltv.SPEND_PARAMETERS)
                buyers = (
                    history.join(F.broadcast(per_pattern), lifetime.PATTERN)
                    .withColumn("expected_spend", lifetime.expected_spend(p, q, v))
                    .withColumn(
                        "expected_value", F.col("expected_purchase_days") * F.col("expected_spend")
                    )
                    .join(buyer_rfm.select(sch.BUYER_ID, "segment"), sch.BUYER_ID, "left")
                )
                write(buyers, config, "marts/buyer_lifetime")
        except NotEnoughData as exc:
            for name, columns in lifetime.EMPTY_TABLES.items():
                write(spark.createDataFrame([], columns), config, name)
            return {"skipped": str(exc)}
    buyer_table = read(spark, output_root(config), "marts/buyer_lifetime")
    summary = lifetime.summary(buyer_table)
    write(summary, config, "marts/lifetime_summary")
    calibrations = [holdout["table"]]
    section: dict[str, Any] = {
        "horizon_months": settings.horizon_months,
        "horizon_end": horizon_end.isoformat(),
        "patterns": len(patterns),
        "buyers": int(patterns["buyers"].sum()),
        "purchases_model": purchases_model.parameters,
        "purchases_model_intervals": purchases_model.intervals,
        "spend_model": spend_model.parameters,
        "spend_model_intervals": spend_model.intervals,
        "spend_frequency_correlation": ltv.spend_frequency_correlation(spend_table),
        "max_spend_frequency_correlation": ltv.MAX_SPEND_FREQUENCY_CORRELATION,
        "expected_purchase_days": float(
            (predicted["expected_purchase_days"] * predicted["buyers"]).sum()
        ),
        "holdout": {k: v for k, v in holdout.items() if k != "table"},
        "summary": [
            r.asDict()
            for r in read(spark, output_root(config), "marts/lifetime_summary")
            .orderBy("view", "rank")
            .collect()
        ],
    }
    # Every buyer is in exactly one segment group of the summary: its total is the buyers'.
    section["expected_value"] = float(
        sum(r["expected_value"] or 0.0 for r in section["summary"] if r["view"] == "segment")
    )
    truth = planted_check(spark, buyer_table, config)
    if truth is not None:
        calibrations.append(truth.pop("table"))
        section["planted"] = truth
    write(
        spark.createDataFrame(pd.concat(calibrations, ignore_index=True)),
        config,
        "marts/lifetime_calibration",
    )
    section["calibration"] = [
        r.asDict() for r in read(spark, output_root(config), "marts/lifetime_calibration").collect()
    ]
    return section


def holdout_check(days: DataFrame, start: dt.date, end: dt.date) -> dict[str, Any]:
    """BG/NBD fitted on the purchase days before `start` and scored on [start, end): per
    buyer seen before start, predicted against actual purchase days in the holdout."""
    window = lifetime.purchases_between(days, start, end)
    table = lifetime.patterns(lifetime.histories(days, start), window).toPandas()
    model = ltv.fit_purchases(table)
    scored = ltv.predicted(table, model, (end - start).days)
    calibration = ltv.calibration(scored, "holdout_purchase_days")
    predicted_total = float(calibration["predicted"].sum())
    actual_total = float(calibration["actual"].sum())
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "buyers": int(table["buyers"].sum()),
        "purchases_model": model.parameters,
        "predicted_purchase_days": predicted_total,
        "actual_purchase_days": actual_total,
        "total_error": ltv.relative_error(predicted_total, actual_total),
        "table": calibration.assign(check=ltv.HOLDOUT),
    }


def planted_check(
    spark: SparkSession, buyer_table: DataFrame, config: Config
) -> dict[str, Any] | None:
    """On a generated input: the planted BG/NBD parameters, and each buyer's purchases the
    generator simulated after the period against the buyer's prediction."""
    truth = read_insights(config.paths.input).get("run", {}).get("planted")
    if truth is None:
        return None
    buyers_truth = truth.get("buyers") or {}
    table_path = buyers_truth.get("after_period_table")
    months_after = (truth.get("after_period") or {}).get("months_after")
    if not table_path or months_after != config.lifetime.horizon_months:
        return None
    after = spark.read.parquet(table_path).select(sch.BUYER_ID, "purchases_after")
    # One row per number of repeat days (a few dozen), grouped as the holdout's by calibration.
    by_repeats = (
        buyer_table.join(after, sch.BUYER_ID, "left")
        .fillna(0, ["purchases_after"])
        .groupBy("repeat_days")
        .agg(
            F.count(F.lit(1)).alias("buyers"),
            F.avg("expected_purchase_days").alias("expected_purchase_days"),
            F.sum("purchases_after").alias("purchases_after"),
        )
        .toPandas()
    )
    groups = ltv.calibration(by_repeats, "purchases_after").assign(check=ltv.PLANTED)
    predicted_total, actual_total = float(groups["predicted"].sum()), float(groups["actual"].sum())
    return {
        "parameters": {k: buyers_truth[k] for k in ltv.BGNBD_PARAMETERS},
        "predicted_purchase_days": predicted_total,
        "actual_purchases": actual_total,
        "total_error": ltv.relative_error(predicted_total, actual_total),
        "table": groups,
    }


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
