"""The progress line: worked out by hand from made-up steps, then read off a real Spark job
as a scheduler's log and as a terminal show it."""

from __future__ import annotations

import io
import logging
import time

import pytest
from pyspark.sql import SparkSession

from hotmart_spark import progress
from hotmart_spark.progress import Step, describe, estimate_left
from tests.test_pipeline import ROOT


def test_the_line_by_hand() -> None:
    started, now = 1000.0, 1075.0
    steps = {
        # One step, 50 of 200 tasks in the 25 s since it was first seen: 2 a second, so
        # 150 left take 75 s.
        "validate": [Step(200, 50, 1050.0)],
        # Two steps at once: their tasks add up, and no estimate.
        "drivers": [Step(8, 2, 1070.0), Step(4, 0, 1074.0)],
        # A job outside the known groups: named after the job.
        progress.UNGROUPED: [Step(10, 0, 1074.0)],
    }
    assert describe(steps, now, started, "pipeline") == (
        "progress 01:15: pipeline 0/10 tasks; drivers 2/12 tasks; "
        "validate 50/200 tasks, about 75 s left in this step"
    )
    assert describe({}, now, started, "pipeline") == "progress 01:15: working on the driver"
    # A step about to end shows a second, not 0.
    almost = {"validate": [Step(8, 7, 1070.0)]}
    assert describe(almost, now, started, "pipeline").endswith("about 1 s left in this step")


def test_no_estimate_from_too_few_tasks() -> None:
    # 9 of 100 done is under 10%: too early to tell; 10 of 100 in 20 s: 90 left take 180 s.
    assert estimate_left(Step(100, 9, 0.0), 20.0) is None
    assert estimate_left(Step(100, 10, 0.0), 20.0) == pytest.approx(180.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def slow_job(spark: SparkSession, group: str) -> None:
    spark.sparkContext.setJobGroup(group, "progress test")
    try:
        spark.sparkContext.parallelize(range(8), 8).map(lambda x: time.sleep(0.4) or x).count()
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)


def test_a_running_job_shows_in_a_schedulers_log(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="hotmart_spark.progress"),
        progress.reporting(spark, "pipeline", ["validate"], io.StringIO(), interval_s=0.3),
    ):
        slow_job(spark, "validate")
    lines = [r.getMessage() for r in caplog.records if r.name == "hotmart_spark.progress"]
    assert any(" validate " in line and "/8 tasks" in line for line in lines), lines


def test_a_terminal_gets_one_line_rewritten_and_cleared(spark: SparkSession) -> None:
    screen = Terminal()
    with progress.reporting(spark, "validate", [], screen, interval_s=0.3):
        slow_job(spark, "not a known group")
    written = screen.getvalue()
    assert written.startswith("\rprogress 00:0")
    assert "validate " in written and "/8 tasks" in written  # ungrouped: the job's name
    assert "\n" not in written
    # Cleared at the end: the last write blanks the line and returns to its start.
    assert written.endswith("\r") and written.rstrip("\r").split("\r")[-1].strip() == ""


def test_spark_submit_tells_the_driver_it_writes_to_a_terminal(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under spark-submit the driver's stderr is the launcher's pipe, not the terminal:
    # spark-submit.sh sets the variable when its own stderr is one.
    piped = io.StringIO()
    monkeypatch.setattr("sys.stderr", piped)
    monkeypatch.setenv(progress.TERMINAL_ENV, "1")
    with progress.reporting(spark, "validate", [], interval_s=0.2):
        time.sleep(0.5)
    assert piped.getvalue().startswith("\rprogress 00:00: working on the driver")
    assert "export HOTMART_SPARK_TERMINAL=1" in (ROOT / "spark-submit.sh").read_text()
