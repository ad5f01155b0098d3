"""The scheduler: every stage in one Spark session, each started once the outputs it reads
are written. Each stage is also a job of its own, reading what an earlier run wrote."""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import filesystem, outputs, records
from hotmart_spark.config import Config
from hotmart_spark.errors import NotEnoughData
from hotmart_spark.stages import aggregates, drivers, forecast, report, segments, validate
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    record_in_manifest,
    recording_writes,
)
from hotmart_spark.threads import Pool

log = logging.getLogger("hotmart_spark.pipeline")

STAGES: tuple[Stage, ...] = (
    validate.STAGE,
    aggregates.STAGE,
    segments.STAGE,
    drivers.STAGE,
    forecast.STAGE,
    report.STAGE,
)
# How often the scheduler looks for newly written outputs while a stage waits for them.
POLL_S = 0.2


def run(spark: SparkSession, config: Config, stages: tuple[Stage, ...] = STAGES) -> dict[str, Any]:
    """Run the stages, each once every output it reads that another stage writes is written:
    a table once its write completes, an insights section once its stage ends. A stage the
    data is too small for (NotEnoughData) is skipped with its reason, written in its insights
    sections, and so is every stage that reads its outputs, but for one that runs after skips
    (the report, which says what was not answered); the others run and are published.

    Aggregates, segments and drivers read only the clean table, which validation writes
    before the quarantine and its checks; forecast reads the quarantine and the daily mart,
    which aggregates writes first. (Waiting for the end of validation, whose last jobs then
    queue behind the other stages' tasks, started forecast about 25 s later on 1.6M rows.)
    """
    started = time.time()
    out = output_root(config)
    # Validation reads the raw input; every later stage reads the run's own output root.
    downstream = dataclasses.replace(config, paths=dataclasses.replace(config.paths, input=out))
    record: dict[str, Any] = {
        "input": config.paths.input,
        "months": {"from": config.input.from_month or None, "to": config.input.to_month or None},
        "concurrent_stages": config.pipeline.concurrent_stages,
        "stages": [],
    }
    writer = {name: stage.name for stage in stages for name in stage.writes}
    # Per stage started, the outputs it has written so far (name -> rows).
    writing: dict[str, dict[str, int]] = {}
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, Exception] = {}
    # Stages the data is too small for, and the stages that read their outputs: why.
    skipped: dict[str, str] = {}
    running: dict[Future[dict[str, Any]], str] = {}

    def is_written(name: str) -> bool:
        return writer[name] in done or name in writing.get(writer[name], {})

    def can_start(stage: Stage) -> bool:
        return all(
            is_written(name) or (stage.runs_after_skips and writer[name] in skipped)
            for name in stage.reads
            if name in writer
        )

    def skip(stage: Stage, why: str) -> None:
        """Skip a stage; its insights sections say so, for the report."""
        skipped[stage.name] = why
        log.warning("stage %s skipped: %s", stage.name, why)
        for name in stage.writes:
            if name.startswith(outputs.INSIGHTS_PREFIX):
                section = name.removeprefix(outputs.INSIGHTS_PREFIX)
                publish_insights(downstream, section, {"not_answered": why})

    def run_stage(stage: Stage) -> dict[str, Any]:
        stage_started = time.time()
        # Spark's UI and event log then tell which stage each job belongs to.
        spark.sparkContext.setJobGroup(stage.name, f"hotmart-spark {stage.name}")
        with recording_writes() as written:
            writing[stage.name] = written
            stage.run(spark, config if stage.name == "validate" else downstream)
        seconds = round(time.time() - stage_started, 2)
        log.info("stage %s done in %.1f s (%d tables written)", stage.name, seconds, len(written))
        return {
            "stage": stage.name,
            "started_s": round(stage_started - started, 2),
            "seconds": seconds,
            "tables": dict(written),
        }

    # Small jobs leave cores idle and the driver plans between jobs: stages that do not wait
    # for each other share the session.
    with Pool(config.pipeline.concurrent_stages, "stage") as pool:
        while True:
            for stage in stages:
                lacking = [writer[r] for r in stage.reads if r in writer and writer[r] in skipped]
                if stage.name not in skipped and lacking and not stage.runs_after_skips:
                    skip(stage, f"the {lacking[0]} stage was skipped ({skipped[lacking[0]]})")
            waiting = [
                s
                for s in stages
                if s.name not in done and s.name not in skipped and s.name not in running.values()
            ]
            # After a failure the running stages finish; no new one starts.
            for stage in [s for s in waiting if can_start(s)] if not failed else []:
                running[pool.submit(run_stage, stage)] = stage.name
                waiting.remove(stage)
            if not running:
                break
            finished, _ = wait(
                running,
                timeout=POLL_S if waiting and not failed else None,
                return_when=FIRST_COMPLETED,
            )
            for future in finished:
                name = running.pop(future)
                try:
                    done[name] = future.result()
                except NotEnoughData as exc:
                    skip(next(s for s in stages if s.name == name), str(exc))
                except Exception as exc:
                    failed[name] = exc
    record["stages"] = [done[s.name] for s in stages if s.name in done]
    record["skipped"] = {s.name: skipped[s.name] for s in stages if s.name in skipped}
    record["total_s"] = round(time.time() - started, 2)
    if failed:
        # With several failures, the earliest stage's is the one to report.
        name = next(s.name for s in stages if s.name in failed)
        record["failed_stage"] = name
        record_in_manifest(config, "pipeline", record)
        raise failed[name]
    record_in_manifest(config, "pipeline", record)
    log.info(
        "pipeline done in %.1f s; manifest: %s",
        record["total_s"],
        filesystem.shown(filesystem.join(out, records.MANIFEST)),
    )
    return record
