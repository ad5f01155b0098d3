"""One run per output root, staged outputs published together, and what a dead run leaves."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hotmart_spark import runs
from hotmart_spark.filesystem import local_path
from hotmart_spark.runs import OutputRootBusy, output_run

# Every file under an output root is reached through Spark's Hadoop filesystem.
pytestmark = pytest.mark.usefixtures("spark")


@pytest.fixture(params=["path", "uri"])
def spelled(request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """An output root named as a local path, or as a file:// URI: the same root either way."""
    return str if request.param == "path" else lambda folder: folder.as_uri()


def manifest(root: Path) -> list[dict]:
    return json.loads((root / "manifest.json").read_text())["runs"]


def publish(root: Path, name: str, text: str) -> None:
    """A published output `name` holding one file."""
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "part-0").write_text(text)


def stage(run: runs.Run, name: str, text: str) -> None:
    path = local_path(run.staged_path(name))
    path.mkdir(parents=True, exist_ok=True)
    (path / "part-0").write_text(text)


def content(root: Path, name: str) -> str:
    return (root / name / "part-0").read_text()


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_second_run_stops_at_once_naming_the_holder(tmp_path: Path) -> None:
    with output_run(str(tmp_path), "pipeline", "app-1") as first:
        with pytest.raises(OutputRootBusy) as busy, output_run(str(tmp_path), "other", "app-2"):
            pytest.fail("two runs held one root")
        since = manifest(tmp_path)[0]["started_at"]
        assert str(busy.value) == (
            f"output root {tmp_path} is in use by the pipeline run {first.run_id} "
            f"(pid {os.getpid()} on {socket.gethostname()}) since {since}; wait for it to end, "
            f"or delete {tmp_path / runs.LOCK} if that process is gone"
        )
    # The refused run left no record; the lock is free once the holder ends.
    assert [r["job"] for r in manifest(tmp_path)] == ["pipeline"]
    assert not (tmp_path / runs.LOCK).exists()
    with output_run(str(tmp_path), "aggregates", "app-3"):
        pass
    assert [(r["job"], r["status"]) for r in manifest(tmp_path)] == [
        ("aggregates", "succeeded"),
        ("pipeline", "succeeded"),
    ]


def test_the_lock_of_a_dead_process_is_taken_over_and_its_run_marked_killed(
    tmp_path: Path,
) -> None:
    # What a killed run leaves: its lock, its staging area, its record saying "running".
    holder = {"run_id": "r1", "job": "pipeline", "pid": dead_pid(), "host": socket.gethostname()}
    (tmp_path / runs.LOCK).write_text(json.dumps({**holder, "started_at": "t"}))
    (tmp_path / runs.STAGING / "r1" / "clean").mkdir(parents=True)
    (tmp_path / "manifest.json").write_text(json.dumps({"runs": [{**holder, "status": "running"}]}))
    with output_run(str(tmp_path), "pipeline", "app-2"):
        assert not (tmp_path / runs.STAGING / "r1").exists()
    assert [r["status"] for r in manifest(tmp_path)] == ["succeeded", "killed"]
    assert not (tmp_path / runs.STAGING).exists()


def test_a_lock_on_another_host_is_stale_only_once_it_is_not_refreshed(tmp_path: Path) -> None:
    lock = tmp_path / runs.LOCK
    holder = {"run_id": "r1", "job": "pipeline", "pid": 1, "host": "elsewhere", "started_at": "t"}
    lock.write_text(json.dumps(holder))
    busy = pytest.raises(OutputRootBusy, match="run r1 \\(pid 1 on elsewhere\\) since t")
    with busy, output_run(str(tmp_path), "pipeline", "app-1"):
        pass
    long_ago = time.time() - runs.STALE_AFTER_S - 1
    os.utime(lock, (long_ago, long_ago))
    with output_run(str(tmp_path), "pipeline", "app-1"):
        assert json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not lock.exists()


def test_a_failed_run_publishes_nothing_and_keeps_the_previous_outputs(
    tmp_path: Path, spelled: Callable[[Path], str]
) -> None:
    publish(tmp_path, "clean", "good")
    publish(tmp_path, "report", "good report")
    failed = pytest.raises(ValueError, match="a stage failed")
    with failed, output_run(spelled(tmp_path), "pipeline", "app-1") as run:
        stage(run, "clean", "new")
        stage(run, "marts/daily_revenue", "new")
        raise ValueError("a stage failed")
    assert content(tmp_path, "clean") == "good"
    assert content(tmp_path, "report") == "good report"
    assert not (tmp_path / "marts").exists()
    assert not (tmp_path / runs.STAGING).exists()
    record = manifest(tmp_path)[0]
    assert (record["status"], record["error"]) == ("failed", "ValueError: a stage failed")


def test_a_run_publishes_what_it_staged_and_keeps_the_rest(
    tmp_path: Path, spelled: Callable[[Path], str]
) -> None:
    publish(tmp_path, "clean", "old clean")
    publish(tmp_path, "marts/pareto", "old pareto")
    root = spelled(tmp_path)
    with output_run(root, "aggregates", "app-1") as run:
        assert run.root == f"file:{tmp_path}"
        stage(run, "marts/daily_revenue", "new daily")
        # Inside the run, readers see the staged version of what it wrote, however the
        # root is spelled.
        staged = f"file:{tmp_path}/{runs.STAGING}/{run.run_id}/marts/daily_revenue"
        assert runs.resolve(str(tmp_path), "marts/daily_revenue") == staged
        assert runs.resolve(tmp_path.as_uri(), "marts/daily_revenue") == staged
        assert runs.resolve(root, "clean") == f"{root}/clean"
        assert not (tmp_path / "marts/daily_revenue").exists()
    assert content(tmp_path, "marts/daily_revenue") == "new daily"
    assert content(tmp_path, "marts/pareto") == "old pareto"
    assert content(tmp_path, "clean") == "old clean"
    assert manifest(tmp_path)[0]["published"] == ["marts/daily_revenue"]


def test_the_report_folder_is_staged_from_the_published_one(tmp_path: Path) -> None:
    publish(tmp_path, "report", "old page")
    (tmp_path / "report" / "insights.json").write_text('{"run": {"rows_in": 1}}')
    with output_run(str(tmp_path), "report", "app-1") as run:
        folder = local_path(run.staged_path(runs.REPORT_FOLDER, keep_published=True))
        assert (folder / "insights.json").read_text() == '{"run": {"rows_in": 1}}'
        (folder / "part-0").unlink()
        (folder / "part-0").write_text("new page")
        assert content(tmp_path, "report") == "old page"
    assert content(tmp_path, "report") == "new page"
    assert (tmp_path / "report" / "insights.json").is_file()


def test_a_publish_stopped_midway_is_completed_by_the_next_run(tmp_path: Path) -> None:
    publish(tmp_path, "clean", "old clean")
    publish(tmp_path, "quarantine", "old quarantine")
    # Run r1 was killed between its two outputs: clean is not yet moved, quarantine is.
    staging = tmp_path / runs.STAGING / "r1"
    (staging / "clean").mkdir(parents=True)
    (staging / "clean" / "part-0").write_text("new clean")
    (tmp_path / "quarantine" / "part-0").write_text("new quarantine")
    journal = {"run_id": "r1", "outputs": ["quarantine", "clean"]}
    (tmp_path / runs.JOURNAL).write_text(json.dumps(journal))
    with output_run(str(tmp_path), "report", "app-2"):
        assert content(tmp_path, "clean") == "new clean"
        assert content(tmp_path, "quarantine") == "new quarantine"
        assert not (tmp_path / runs.JOURNAL).exists()
        assert not staging.exists()


def test_an_output_blocked_by_a_file_is_refused_when_first_written(tmp_path: Path) -> None:
    (tmp_path / "marts").write_text("not a folder")
    refused = pytest.raises(runs.UserError, match="marts is a file where the run writes marts/")
    with refused, output_run(str(tmp_path), "aggregates", "app-1") as run:
        run.staged_path("marts/pareto")
    assert (tmp_path / "marts").read_text() == "not a folder"
