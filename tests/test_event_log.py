"""bench/event_log.py: the per-stage time of a hand-written event log."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("event_log", ROOT / "bench" / "event_log.py")
event_log = importlib.util.module_from_spec(_spec)
# dataclasses look their module up by name while the class is made.
sys.modules["event_log"] = event_log
_spec.loader.exec_module(event_log)


def job_start(job: int, at_ms: int, stages: list[int], group: str | None, site: str) -> dict:
    properties = {"callSite.short": site}
    if group:
        properties["spark.jobGroup.id"] = group
    return {
        "Event": "SparkListenerJobStart",
        "Job ID": job,
        "Submission Time": at_ms,
        "Stage IDs": stages,
        "Properties": properties,
    }


def job_end(job: int, at_ms: int) -> dict:
    return {"Event": "SparkListenerJobEnd", "Job ID": job, "Completion Time": at_ms}


def task_end(stage: int, run_ms: int, cpu_ns: int) -> dict:
    return {
        "Event": "SparkListenerTaskEnd",
        "Stage ID": stage,
        "Task Metrics": {"Executor Run Time": run_ms, "Executor CPU Time": cpu_ns},
    }


EVENTS = [
    {"Event": "SparkListenerApplicationStart"},
    job_start(0, 1_000, [0, 1], "validate", "first at quality.py:157"),
    task_end(0, 3_000, 2_000_000_000),
    job_start(1, 4_000, [2], "aggregates", "first at aggregates.py:48"),
    job_start(2, 4_200, [1, 3], "validate", "count at validate.py:58"),
    # Stage 1 is listed again by job 2 (which reuses its shuffle output): it is job 0's.
    task_end(1, 1_000, 500_000_000),
    job_end(0, 5_000),
    task_end(2, 500, 250_000_000),
    job_end(1, 4_500),
    task_end(3, 200, 100_000_000),
    job_end(2, 6_500),
    job_start(3, 7_000, [4], None, "first at segments.py:50"),
    task_end(4, 100, 50_000_000),
    job_end(3, 7_100),
]


def test_times_per_job_group_and_call_site(tmp_path: Path) -> None:
    log = tmp_path / "eventlog_v2_local-1"
    log.mkdir()
    # A rolling log: a folder of events_<n>_<app> files, read in their index order.
    (log / "events_1_local-1").write_text("\n".join(json.dumps(e) for e in EVENTS[:6]) + "\n")
    (log / "events_2_local-1").write_text("\n".join(json.dumps(e) for e in EVENTS[6:]) + "\n")
    groups, by_site = event_log.summarise(event_log.lines(event_log.event_files(log)))
    validate, aggregates, other = groups["validate"], groups["aggregates"], groups["-"]
    # validate: jobs 0 and 2, tasks of stages 0, 1 and 3: 3 + 1 + 0.2 s run, 2 + 0.5 + 0.1 s
    # CPU, from 1.0 s (job 0 starts) to 6.5 s (job 2 ends).
    assert (validate.jobs, validate.tasks) == (2, 3)
    assert validate.task_s == pytest.approx(4.2)
    assert validate.cpu_s == pytest.approx(2.6)
    assert validate.span_s == pytest.approx(5.5)
    assert (aggregates.jobs, aggregates.tasks, aggregates.span_s) == (1, 1, pytest.approx(0.5))
    assert aggregates.cpu_s == pytest.approx(0.25)
    assert (other.jobs, other.tasks, other.cpu_s) == (1, 1, pytest.approx(0.05))
    assert by_site[("validate", "first at quality.py:157")] == pytest.approx(2.5)
    assert by_site[("validate", "count at validate.py:58")] == pytest.approx(0.1)


def test_a_compressed_or_missing_log_is_one_line(tmp_path: Path) -> None:
    compressed = tmp_path / "events_1_local-1.zstd"
    compressed.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(SystemExit, match=r"compressed; run with --conf spark.eventLog.compress"):
        event_log.event_files(compressed)
    with pytest.raises(SystemExit, match="no event log at"):
        event_log.event_files(tmp_path / "nowhere")
