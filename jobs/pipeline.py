"""The whole analysis in one Spark session: validate, aggregates, segments, drivers, forecast,
report. Each stage is also a job of its own (jobs/<stage>.py) reading what the one before wrote."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import io
from hotmart_spark.cli import run_job
from hotmart_spark.config import Config

log = logging.getLogger("hotmart_spark.pipeline")


def stage_main(job: str) -> Callable[[SparkSession, Config], object]:
    """The main of jobs/<job>.py, imported when first called: the stages' libraries
    (statsmodels, scikit-learn, matplotlib) are imported while the session starts instead
    of before (`run_job`'s preload)."""

    def main(spark: SparkSession, config: Config) -> object:
        return importlib.import_module(f"jobs.{job}").main(spark, config)

    return main


STAGES: dict[str, Callable[[SparkSession, Config], object]] = {
    name: stage_main(name)
    for name in ("validate", "aggregates", "segments", "drivers", "forecast", "report")
}
# The stages each stage waits for to end: those whose output it reads, where WAITS_FOR_TABLES
# below does not let it start sooner.
WAITS_FOR: dict[str, tuple[str, ...]] = {
    "validate": (),
    "aggregates": (),
    "segments": (),
    "drivers": (),
    "forecast": (),
    "report": ("validate", "aggregates", "segments", "drivers", "forecast"),
}
# Tables (under the output root) a stage reads from a stage that may still be running: it
# starts once they are written instead of when that whole stage ends. Aggregates, segments
# and drivers read only the clean table, which validation writes before the quarantine and
# its checks; forecast reads the quarantine and the daily mart, which aggregates writes
# first. (Waiting for the end of validation, whose last jobs then queue behind the other
# stages' tasks, started forecast about 25 s later on 1.6M rows.)
READS_CLEAN = {"validate": ("clean",)}
WAITS_FOR_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "aggregates": READS_CLEAN,
    "segments": READS_CLEAN,
    "drivers": READS_CLEAN,
    "forecast": {"validate": ("quarantine",), "aggregates": ("marts/daily_revenue",)},
}
# How often the scheduler looks for those tables while a stage waits for them.
TABLE_POLL_S = 0.2


def main(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    out = config.paths.output.rstrip("/")
    # Validation reads the raw input; every later stage reads the run's own output root.
    downstream = dataclasses.replace(config, paths=dataclasses.replace(config.paths, input=out))
    record: dict[str, Any] = {
        "input": config.paths.input,
        "months": {"from": config.input.from_month or None, "to": config.input.to_month or None},
        "concurrent_stages": config.pipeline.concurrent_stages,
        "status": "running",
        "stages": [],
    }
    # A run killed before its end leaves this record saying so.
    io.update_manifest(out, "pipeline", record)
    # Per stage started, the tables it has written so far (path -> rows).
    writing: dict[str, dict[str, int]] = {}

    def run(name: str) -> dict[str, Any]:
        stage_started = time.time()
        # Spark's UI and event log then tell which stage each job belongs to.
        spark.sparkContext.setJobGroup(name, f"hotmart-spark {name}")
        with io.recording_writes() as written:
            writing[name] = written
            STAGES[name](spark, config if name == "validate" else downstream)
        seconds = round(time.time() - stage_started, 2)
        log.info("stage %s done in %.1f s (%d tables written)", name, seconds, len(written))
        return {
            "stage": name,
            "started_s": round(stage_started - started, 2),
            "seconds": seconds,
            "tables": {path.removeprefix(f"{out}/"): rows for path, rows in written.items()},
        }

    # Small jobs leave cores idle (a shuffle of a producer-sized table is one task) and the
    # driver plans between jobs: stages that do not wait for each other share the session.
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, Exception] = {}
    running: dict[Future[dict[str, Any]], str] = {}

    def can_start(name: str) -> bool:
        tables_written = all(
            stage in done or all(f"{out}/{table}" in writing.get(stage, {}) for table in tables)
            for stage, tables in WAITS_FOR_TABLES.get(name, {}).items()
        )
        return tables_written and all(before in done for before in WAITS_FOR[name])

    with ThreadPoolExecutor(config.pipeline.concurrent_stages, "stage") as pool:
        while True:
            waiting = [name for name in STAGES if name not in done and name not in running.values()]
            ready = [name for name in waiting if can_start(name)]
            # After a failure the running stages finish; no new one starts.
            for name in ready if not failed else []:
                running[pool.submit(run, name)] = name
            if not running:
                break
            poll = not failed and any(name in WAITS_FOR_TABLES for name in waiting)
            finished, _ = wait(
                running, timeout=TABLE_POLL_S if poll else None, return_when=FIRST_COMPLETED
            )
            for future in finished:
                name = running.pop(future)
                try:
                    done[name] = future.result()
                except Exception as exc:
                    failed[name] = exc
    record["stages"] = [done[name] for name in STAGES if name in done]
    record["total_s"] = round(time.time() - started, 2)
    if failed:
        # With several failures, the earliest stage's is the one to report.
        name = next(name for name in STAGES if name in failed)
        exc = failed[name]
        record["status"] = "failed"
        record["failed_stage"] = name
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        io.update_manifest(out, "pipeline", record)
        raise exc
    record["status"] = "succeeded"
    io.update_manifest(out, "pipeline", record)
    log.info("pipeline done in %.1f s; manifest: %s/manifest.json", record["total_s"], out)
    return record


if __name__ == "__main__":
    sys.exit(run_job("pipeline", main, preload=[f"jobs.{name}" for name in STAGES]))
