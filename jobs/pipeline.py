"""The whole analysis in one Spark session: validate, aggregates, segments, drivers, forecast,
report. Each stage is also a job of its own (jobs/<stage>.py) reading what the one before wrote."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import io
from hotmart_spark.cli import run_job
from hotmart_spark.config import Config
from jobs import aggregates, drivers, forecast, report, segments, validate

log = logging.getLogger("hotmart_spark.pipeline")

STAGES: dict[str, Callable[[SparkSession, Config], object]] = {
    "validate": validate.main,
    "aggregates": aggregates.main,
    "segments": segments.main,
    "drivers": drivers.main,
    "forecast": forecast.main,
    "report": report.main,
}


def main(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    out = config.paths.output.rstrip("/")
    # Validation reads the raw input; every later stage reads the run's own output root.
    downstream = dataclasses.replace(config, paths=dataclasses.replace(config.paths, input=out))
    record: dict[str, Any] = {
        "input": config.paths.input,
        "months": {"from": config.input.from_month or None, "to": config.input.to_month or None},
        "status": "running",
        "stages": [],
    }
    for name, stage in STAGES.items():
        stage_started = time.time()
        try:
            stage(spark, config if name == "validate" else downstream)
        except Exception as exc:
            record["status"] = "failed"
            record["failed_stage"] = name
            record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
            record["total_s"] = round(time.time() - started, 2)
            io.update_manifest(out, "pipeline", record)
            raise
        seconds = round(time.time() - stage_started, 2)
        tables = io.tables_written_since(spark, out, stage_started)
        record["stages"].append({"stage": name, "seconds": seconds, "tables": tables})
        log.info("stage %s done in %.1f s (%d tables written)", name, seconds, len(tables))
    record["status"] = "succeeded"
    record["total_s"] = round(time.time() - started, 2)
    io.update_manifest(out, "pipeline", record)
    log.info("pipeline done in %.1f s; manifest: %s/manifest.json", record["total_s"], out)
    return record


if __name__ == "__main__":
    sys.exit(run_job("pipeline", main))
