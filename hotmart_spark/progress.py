"""Progress a person can read while a job runs: per pipeline stage (the Spark job group its
jobs carry), how far the tasks of its running Spark stages are.

Spark's console progress bar is off (it interleaves with the log and fills a scheduler's
log with carriage returns), and the project logs a line only when a stage ends, so a long
validation printed nothing for half an hour. On a terminal this is one line rewritten in
place every second; elsewhere, a plain log line every half minute. An estimate of the time
left is given only for one step's tasks, from how fast its own tasks have finished: a
Spark job's later steps, and a stage's later jobs, are not known in advance, so no
estimate for a whole stage or run would be honest.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from pyspark.sql import SparkSession

log = logging.getLogger("hotmart_spark.progress")

TERMINAL_INTERVAL_S = 1.0
LOG_INTERVAL_S = 30.0
# Below this share of a step's tasks done, a rate says little: no estimate.
MIN_DONE_FOR_ESTIMATE = 0.1
UNGROUPED = ""
# Under spark-submit the driver's output reaches the terminal through a pipe in Spark's
# launcher, so the driver cannot see the terminal itself: spark-submit.sh tells it.
TERMINAL_ENV = "HOTMART_SPARK_TERMINAL"


@dataclass(frozen=True)
class Step:
    """A running Spark stage: its tasks and when this reporter first saw it."""

    tasks: int
    done: int
    first_seen: float


class Tracker:
    """What the reporter reads off Spark's status tracker, per job group."""

    def __init__(self, spark: SparkSession, groups: Sequence[str]) -> None:
        self._status = spark.sparkContext.statusTracker()
        self._groups = list(groups)
        self._first_seen: dict[int, float] = {}

    def running(self, now: float) -> dict[str, list[Step]]:
        """Per group with a running Spark job, its running Spark stages; jobs outside the
        known groups come under UNGROUPED."""
        active = set(self._status.getActiveJobsIds())
        group_of = {
            job: group
            for group in self._groups
            for job in self._status.getJobIdsForGroup(group)
            if job in active
        }
        steps: dict[str, list[Step]] = {}
        for job in sorted(active):
            info = self._status.getJobInfo(job)
            if info is None:
                continue
            for stage_id in info.stageIds:
                stage = self._status.getStageInfo(stage_id)
                if stage is None or stage.numActiveTasks + stage.numCompletedTasks == 0:
                    continue  # waiting for the steps before it
                if stage.numCompletedTasks >= stage.numTasks:
                    continue
                first = self._first_seen.setdefault(stage_id, now)
                steps.setdefault(group_of.get(job, UNGROUPED), []).append(
                    Step(stage.numTasks, stage.numCompletedTasks, first)
                )
        return steps


def describe(steps: dict[str, list[Step]], now: float, started: float, job: str) -> str:
    """One line: elapsed time, then per group the tasks done of its running steps, and an
    estimate where one group runs one step far enough along."""
    parts = []
    for group, running in sorted(steps.items()):
        done, tasks = sum(s.done for s in running), sum(s.tasks for s in running)
        part = f"{group or job} {done}/{tasks} tasks"
        if len(running) == 1:
            step = running[0]
            left = estimate_left(step, now)
            if left is not None:
                part += f", about {max(1, math.ceil(left))} s left in this step"
        parts.append(part)
    elapsed = time.strftime("%M:%S", time.gmtime(now - started))
    return f"progress {elapsed}: " + ("; ".join(parts) if parts else "working on the driver")


def estimate_left(step: Step, now: float) -> float | None:
    """Seconds left for a step's tasks at the rate its done tasks went, or None while too
    few are done to tell."""
    if step.tasks == 0 or step.done < MIN_DONE_FOR_ESTIMATE * step.tasks:
        return None
    rate = step.done / max(now - step.first_seen, 1e-9)
    return (step.tasks - step.done) / rate


class Reporter(threading.Thread):
    """Writes the progress line until stopped."""

    def __init__(
        self,
        tracker: Any,
        job: str,
        stream: TextIO | None = None,
        interval_s: float | None = None,
    ) -> None:
        super().__init__(name="progress", daemon=True)
        self._tracker = tracker
        self._job = job
        self._stream = stream or sys.stderr
        self._terminal = self._stream.isatty() or (
            stream is None and os.environ.get(TERMINAL_ENV) == "1"
        )
        self._interval = interval_s or (TERMINAL_INTERVAL_S if self._terminal else LOG_INTERVAL_S)
        self._halt = threading.Event()
        self._began = time.time()
        self._width = 0

    def run(self) -> None:
        if self._terminal:
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._clear_line)
        while not self._halt.wait(self._interval):
            try:
                now = time.time()
                line = describe(self._tracker.running(now), now, self._began, self._job)
            except Exception:  # the JVM going away at the end of a run: nothing to report
                return
            self._show(line)

    def _show(self, line: str) -> None:
        if self._terminal:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            log.info("%s", line)
        self._stream.flush()

    def _clear_line(self, record: logging.LogRecord) -> bool:
        """Run before every log line on a terminal: the line starts where the progress line
        was, not after it."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        return True

    def stop(self) -> None:
        self._halt.set()
        self.join()
        if self._terminal:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._clear_line)
            self._clear_line(logging.makeLogRecord({}))
            self._stream.flush()


@contextmanager
def reporting(
    spark: SparkSession,
    job: str,
    groups: Sequence[str],
    stream: TextIO | None = None,
    interval_s: float | None = None,
) -> Iterator[Reporter]:
    """Reports progress while the block runs."""
    reporter = Reporter(Tracker(spark, groups), job, stream, interval_s)
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()
