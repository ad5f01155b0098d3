"""Where a run's Spark time went, per pipeline stage, from Spark's event log.

    mkdir -p /tmp/events
    ./spark-submit.sh --conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file:/tmp/events \
        --conf spark.eventLog.compress=false jobs/pipeline.py --input data/generated --output out
    .venv/bin/python bench/event_log.py /tmp/events/eventlog_v2_local-*

The pipeline runs each stage's Spark jobs under the stage's name as job group. Per group this
prints its jobs and tasks, the tasks' run time and, of it, CPU time, and the span from its
first job's start to its last job's end; then the call sites whose tasks took the most CPU.
Jobs outside any group (a stage job run alone) are under "-".
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

NO_GROUP = "-"
ZIPPED = re.compile(r"\S*\.zip/")


@dataclass
class GroupTimes:
    jobs: int = 0
    tasks: int = 0
    task_s: float = 0.0
    cpu_s: float = 0.0
    first_start_ms: int | None = None
    last_end_ms: int | None = None

    @property
    def span_s(self) -> float:
        if self.first_start_ms is None or self.last_end_ms is None:
            return 0.0
        return (self.last_end_ms - self.first_start_ms) / 1000


def summarise(events: Iterable[str]) -> tuple[dict[str, GroupTimes], Counter[tuple[str, str]]]:
    """Per job group its times, and the task CPU seconds per (group, call site)."""
    groups: dict[str, GroupTimes] = {}
    job_group: dict[int, str] = {}
    # A stage is listed by every job that reuses its shuffle output; it ran for the first.
    stage_site: dict[int, tuple[str, str]] = {}
    cpu_by_site: Counter[tuple[str, str]] = Counter()
    for line in events:
        event = json.loads(line)
        kind = event["Event"]
        if kind == "SparkListenerJobStart":
            properties = event.get("Properties") or {}
            group = properties.get("spark.jobGroup.id") or NO_GROUP
            site = properties.get("callSite.short") or ""
            job_group[event["Job ID"]] = group
            times = groups.setdefault(group, GroupTimes())
            times.jobs += 1
            start = event["Submission Time"]
            if times.first_start_ms is None or start < times.first_start_ms:
                times.first_start_ms = start
            for stage in event["Stage IDs"]:
                stage_site.setdefault(stage, (group, site))
        elif kind == "SparkListenerJobEnd":
            times = groups[job_group[event["Job ID"]]]
            end = event["Completion Time"]
            if times.last_end_ms is None or end > times.last_end_ms:
                times.last_end_ms = end
        elif kind == "SparkListenerTaskEnd":
            group, site = stage_site.get(event["Stage ID"], (NO_GROUP, ""))
            metrics = event.get("Task Metrics") or {}
            times = groups.setdefault(group, GroupTimes())
            cpu_s = metrics.get("Executor CPU Time", 0) / 1e9
            times.tasks += 1
            times.task_s += metrics.get("Executor Run Time", 0) / 1000
            times.cpu_s += cpu_s
            cpu_by_site[(group, site)] += cpu_s
    return groups, cpu_by_site


def event_files(path: Path) -> list[Path]:
    """The event log's files in order: a file, or a rolling log's folder of events_<n>_* files."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    else:
        raise SystemExit(f"error: no event log at {path}")
    if not files:
        raise SystemExit(f"error: no events_* files in {path}")
    compressed = [f for f in files if f.suffix in (".zstd", ".lz4", ".snappy", ".lzf")]
    if compressed:
        raise SystemExit(
            f"error: {compressed[0]} is compressed; run with --conf spark.eventLog.compress=false"
        )
    return files


def lines(files: list[Path]) -> Iterable[str]:
    for file in files:
        with file.open(encoding="utf-8") as events:
            yield from (line for line in events if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="an event log file or rolling event log folder")
    parser.add_argument("--sites", type=int, default=15, help="call sites to list")
    args = parser.parse_args()
    groups, cpu_by_site = summarise(lines(event_files(args.log)))
    print(f"{'job group':<12} {'jobs':>6} {'tasks':>7} {'task s':>8} {'CPU s':>8} {'span s':>8}")
    for name, t in sorted(groups.items(), key=lambda item: item[1].first_start_ms or 0):
        print(
            f"{name:<12} {t.jobs:>6} {t.tasks:>7} {t.task_s:>8.1f} {t.cpu_s:>8.1f} {t.span_s:>8.1f}"
        )
    print(f"\ntask CPU s by call site (top {args.sites})")
    for (group, site), seconds in cpu_by_site.most_common(args.sites):
        # Sites inside the shipped package zip are shown from the package down.
        shown = ZIPPED.sub("", site) or "(no call site)"
        print(f"{seconds:>8.1f}  {group:<12} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
