"""Runs as a scheduler starts them (spark-submit.sh): two on one output root, one killed
midway, and the exit codes a scheduler acts on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hotmart_spark import runs
from tests.conftest import PLUMBING, SmallRun
from tests.test_pipeline import ROOT, last_line, run_cli

# These tests are about the output root.
LIGHT = [arg for key in PLUMBING for arg in ("--set", key)]


def start(job: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(ROOT / "spark-submit.sh"), "--master", "local[2]", f"jobs/{job}.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(path_glob: tuple[Path, str], process: subprocess.Popen[str], seconds: float) -> Path:
    folder, pattern = path_glob
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        time.sleep(0.2)
    pytest.fail(f"no {pattern} under {folder} after {seconds} s")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every published file but the manifest: size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }


@pytest.mark.submit
def test_a_second_run_on_the_root_stops_at_once_and_the_first_one_lands(
    small_run: SmallRun, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    paths = ["--input", str(small_run.raw), "--output", str(out)]
    # Validation holds the root as a pipeline does (every job runs through the same lock),
    # in a third of the time. The small run quarantines about 7% of its rows (1% of each
    # defect): above this gate.
    first = start("validate", *paths, "--set", "quality.max_quarantine_share=0.001")
    wait_for((out, runs.LOCK), first, 120)
    second = run_cli(*paths, *LIGHT)
    holder = json.loads((out / runs.LOCK).read_text())
    assert second.returncode == 4, second.stdout[-2000:]
    assert last_line(second).startswith(
        f"error: output root {out} is in use by the validate run {holder['run_id']} "
        f"(pid {holder['pid']} on "
    )
    output, _ = first.communicate(timeout=600)
    validated = small_run.results["validate"]
    share = validated["rows_quarantined"] / validated["rows_in"]
    assert first.returncode == 5, output[-3000:]
    assert output.strip().splitlines()[-1] == (
        f"error: {share:.1%} of the rows were quarantined ({validated['rows_quarantined']:,} of "
        f"{validated['rows_in']:,}), more than quality.max_quarantine_share = 0.1%: see "
        f"quarantine/ under {out}"
    )
    # Everything was published, once: the refused run wrote nothing.
    manifest = json.loads((out / "manifest.json").read_text())["runs"]
    assert [(r["job"], r["status"]) for r in manifest] == [("validate", "succeeded")]
    assert manifest[0]["quality_gate"] == [output.strip().splitlines()[-1].removeprefix("error: ")]
    rows = json.loads((out / "report" / "insights.json").read_text())["run"]
    assert (rows["rows_in"], rows["rows_clean"]) == (validated["rows_in"], validated["rows_clean"])
    assert any((out / "clean").rglob("*.parquet"))
    assert not (out / runs.LOCK).exists() and not (out / runs.STAGING).exists()


@pytest.mark.submit
def test_a_run_killed_midway_leaves_the_previous_outputs_whole(
    small_run: SmallRun, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(small_run.out, out)
    before = snapshot(out)
    killed = start("pipeline", "--input", str(small_run.raw), "--output", str(out), *LIGHT)
    # Killed once validation has staged the clean table and the marts are being computed.
    wait_for((out, f"{runs.STAGING}/*/clean/_SUCCESS"), killed, 240)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    # What the dead run leaves: its lock and staging area beside the previous outputs,
    # every file of which is as it was.
    left = snapshot(out)
    assert runs.LOCK in left and any(k.startswith(runs.STAGING) for k in left)
    assert {
        k: v for k, v in left.items() if k != runs.LOCK and not k.startswith(runs.STAGING)
    } == before
    assert json.loads((out / "manifest.json").read_text())["runs"][0]["status"] == "running"
    # The next job on the root takes over the dead run's lock, clears its staging area and
    # marks it; the report it writes is built from the previous, complete tables.
    submit = [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "jobs/report.py"]
    report = subprocess.run(
        [*submit, "--input", str(out), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stdout[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())["runs"]
    assert [(r["job"], r["status"]) for r in manifest[:2]] == [
        ("report", "succeeded"),
        ("pipeline", "killed"),
    ]
    assert not (out / runs.STAGING).exists() and not (out / runs.LOCK).exists()
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith("report/")} == {
        k: v for k, v in before.items() if not k.startswith("report/")
    }
