"""Buyer segments (Q3): RFM values, 1-5 scores and named segments, from clean purchases."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import io
from hotmart_spark.cli import run_job
from hotmart_spark.config import Config
from hotmart_spark.transforms import rfm
from hotmart_spark.transforms.revenue import valued_purchases

log = logging.getLogger("hotmart_spark.segments")


def main(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    out = config.paths.output.rstrip("/")
    clean = io.read_clean(spark, config.paths.input)
    v = config.value
    purchases, scale, z_min = valued_purchases(
        clean, v.mean, v.std, v.currency, v.platform_fee_rate
    )
    reference = rfm.reference_day(purchases)
    values = rfm.buyer_rfm(purchases, reference).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        cuts = rfm.quintile_cuts(values)
        scored = rfm.with_scores(values, cuts).withColumn(
            "segment", rfm.segment(config.rfm.segments)
        )
        io.write_table(scored, f"{out}/marts/buyer_rfm")
        buyer_rfm = spark.read.parquet(f"{out}/marts/buyer_rfm")
        io.write_small_table(rfm.segment_summary(buyer_rfm, purchases), f"{out}/marts/rfm_segments")
    finally:
        values.unpersist()
    summary = spark.read.parquet(f"{out}/marts/rfm_segments").orderBy(F.desc("value")).collect()
    segments = [
        {
            "segment": r["segment"],
            "buyers": r["buyers"],
            "buyer_share": r["buyer_share"],
            "value_share": r["value_share"],
            "top_categories": list(r["top_categories"] or []),
        }
        for r in summary
    ]
    io.update_insights(
        out,
        "segments",
        {
            "value_unit": scale.unit,
            "reference_day": reference.isoformat(),
            "rfm_cuts": cuts,
            "rfm": segments,
        },
    )
    io.update_manifest(
        out,
        "segments",
        {
            "input": config.paths.input,
            "z_min": z_min,
            "value_unit": scale.unit,
            "reference_day": reference.isoformat(),
            "rfm_cuts": cuts,
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
    return {"reference_day": reference, "cuts": cuts, "rfm": segments}


if __name__ == "__main__":
    sys.exit(run_job("segments", main))
