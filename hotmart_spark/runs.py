"""One run at a time per output root, and a run's outputs published together when it succeeds.

A run holds the root's lock file from start to end. Every table and the report folder it
writes go to its staging area (_staging/<run id>/ under the root); readers in the run see
the staged version of what the run wrote and the published version of the rest. When the
run succeeds its staged outputs replace the published ones, each by one directory rename;
when it fails or is killed, the published outputs stay as they were. The manifest at the
root keeps one record per run, newest first.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hotmart_spark import filesystem, records
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import join, shown

log = logging.getLogger(__name__)

LOCK = "_run.lock"
STAGING = "_staging"
# The list of outputs being published; a run killed during its publish is completed by the
# next run from it.
JOURNAL = "_publishing.json"
# Old versions moved aside during a publish, inside the publishing run's staging area.
REPLACED = "_replaced"
REPORT_FOLDER = "report"
# The manifest keeps this many runs, newest first.
MAX_RUNS = 100
# The holder refreshes the lock's modification time this often; a lock not refreshed for
# STALE_AFTER_S belongs to a run that is gone (the only test possible from another host).
HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0
UNNAMED_LOCK_S = 5.0


class OutputRootBusy(UserError):
    """Another run holds the output root's lock."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Run:
    """A job's run on an output root: its record in the manifest and what it has staged."""

    run_id: str
    job: str
    # The output root as a full URI (file:/..., hdfs://..., s3a://...).
    root: str
    record: dict[str, Any]
    staged: list[str] = field(default_factory=list)
    # Messages of quality gates the run's data failed; the job exits with its own code.
    gate_failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def staging(self) -> str:
        return join(self.root, STAGING, self.run_id)

    def staged_path(self, name: str, keep_published: bool = False) -> str:
        """Where the run writes output `name` (a table or the report folder); the first call
        for a name registers it for publishing. With keep_published, the staged output
        starts as a copy of the published one (the report folder: insights.json keeps the
        sections of stages this run does not run)."""
        staged = join(self.staging, name)
        with self._lock:
            if name not in self.staged:
                self._check_publishable(name)
                published = join(self.root, name)
                if keep_published and filesystem.is_dir(published):
                    filesystem.copy_tree(published, staged)
                elif keep_published:
                    filesystem.mkdirs(staged)
                self.staged.append(name)
        return staged

    def _check_publishable(self, name: str) -> None:
        """One line now, rather than a publish that fails once everything is computed."""
        parts = name.split("/")
        for depth in range(len(parts), 0, -1):
            folder = join(self.root, *parts[:depth])
            if filesystem.is_file(folder):
                raise UserError(
                    f"{shown(folder)} is a file where the run writes {name}: move it away"
                )

    def record_stage(self, stage: str, record: dict[str, Any]) -> str:
        """Keep one stage's record in the run's record and rewrite the manifest."""
        with self._lock:
            self.record.setdefault("stages", {})[stage] = record
            return _write_run_record(self.root, self.record)


_CURRENT: contextvars.ContextVar[Run | None] = contextvars.ContextVar("run", default=None)


def current() -> Run:
    """The run open in this context (Pool tasks see their submitter's)."""
    run = _CURRENT.get()
    if run is None:
        raise RuntimeError("no run is open: a stage writes only inside runs.output_run")
    return run


def resolve(root: str, name: str) -> str:
    """The path to read output `name` under root from: the open run's staged version when it
    wrote one there, else the published one."""
    run = _CURRENT.get()
    if run is not None and name in run.staged and filesystem.qualified(root) == run.root:
        return join(run.staging, name)
    return join(root, name)


@contextlib.contextmanager
def output_run(
    root: str,
    job: str,
    application_id: str,
    details: dict[str, Any] | None = None,
    writes: tuple[str, ...] = (),
) -> Iterator[Run]:
    """Hold the output root for a job's run and publish what it staged once it succeeds.
    `writes` (outputs under the root) are checked before anything is computed: a file where
    one of them goes ends the run at once."""
    folder = filesystem.qualified(root)
    filesystem.mkdirs(folder)
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    holder = {
        "run_id": run_id,
        "job": job,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": now(),
    }
    with _locked(folder, holder):
        _recover(folder)
        record: dict[str, Any] = {
            "run_id": run_id,
            "job": job,
            "status": "running",
            "application_id": application_id,
            "started_at": holder["started_at"],
            "pid": holder["pid"],
            "host": holder["host"],
            "versions": records.versions(),
            **(details or {}),
            "stages": {},
        }
        run = Run(run_id, job, folder, record)
        _write_run_record(folder, record)
        token = _CURRENT.set(run)
        try:
            for name in writes:
                run._check_publishable(name)
            yield run
        except BaseException as exc:
            _remove_staging(folder, run_id)
            record["status"] = "failed"
            record["error"] = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [""])[0]
            record["ended_at"] = now()
            _write_run_record(folder, record)
            raise
        else:
            _publish(folder, run_id, list(run.staged))
            record["status"] = "succeeded"
            record["published"] = list(run.staged)
            record["ended_at"] = now()
            if run.gate_failures:
                record["quality_gate"] = run.gate_failures
            _write_run_record(folder, record)
        finally:
            _CURRENT.reset(token)


@contextlib.contextmanager
def _locked(folder: str, holder: dict[str, Any]) -> Iterator[None]:
    """The root's lock for the block, or OutputRootBusy naming the run that holds it."""
    lock = join(folder, LOCK)
    content = json.dumps(holder).encode("utf-8")
    for _ in range(50):
        if not filesystem.create_new(lock, content):
            other = _holder(lock)
            if not _is_stale(lock, other):
                if other is None:
                    # Created this instant by a run still writing its name into it.
                    time.sleep(0.2)
                    continue
                raise OutputRootBusy(
                    f"output root {shown(folder)} is in use by the {other.get('job')} run "
                    f"{other.get('run_id')} (pid {other.get('pid')} on {other.get('host')}) since "
                    f"{other.get('started_at')}; wait for it to end, or delete {shown(lock)} if "
                    "that process is gone"
                ) from None
            # A rename succeeds for one of the runs that found the lock stale.
            with contextlib.suppress(OSError):
                filesystem.rename(lock, join(folder, f"{LOCK}.stale.{secrets.token_hex(3)}"))
                log.warning("took over the lock of %s, which is gone", other or "an unnamed run")
            continue
        break
    else:
        raise OutputRootBusy(f"output root {shown(folder)} is in use: cannot take {shown(lock)}")
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                filesystem.touch(lock)

    beat = threading.Thread(target=heartbeat, name="run-lock-heartbeat", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        filesystem.delete(lock)


def _holder(lock: str) -> dict[str, Any] | None:
    try:
        data = filesystem.read_bytes(lock)
        return json.loads(data.decode("utf-8")) if data else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _is_stale(lock: str, holder: dict[str, Any] | None) -> bool:
    """True when the run holding the lock is gone: its process is dead (same host), or it
    has not refreshed the lock for STALE_AFTER_S. A lock still without its holder's name
    after a few seconds was left by a run killed while taking it."""
    modified = filesystem.modified_at(lock)
    if modified is None:
        return True
    idle = time.time() - modified
    if idle > STALE_AFTER_S:
        return True
    if holder is None:
        return idle > UNNAMED_LOCK_S
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError, TypeError):
            return False
    return False


def _recover(folder: str) -> None:
    """Under the lock: finish a publish a killed run began, remove staging areas of runs that
    are gone, and mark their records."""
    journal = join(folder, JOURNAL)
    plan = records.read_json(journal)
    if plan:
        log.warning("completing the publish of run %s, which stopped during it", plan["run_id"])
        _move_into_place(folder, plan["run_id"], plan["outputs"])
        filesystem.delete(journal)
    staging = join(folder, STAGING)
    for leftover in filesystem.children(staging):
        log.warning("removing %s, left by a run that did not end", shown(join(staging, leftover)))
    filesystem.delete(staging)
    for name in filesystem.children(folder):
        if name.startswith(f"{LOCK}.stale"):
            filesystem.delete(join(folder, name))
    manifest = records.read_manifest(folder)
    unfinished = [r for r in manifest.get("runs", []) if r.get("status") == "running"]
    for record in unfinished:
        record["status"] = "killed"
        record["ended_at"] = f"before {now()}"
    if unfinished:
        records.write_manifest(folder, manifest)


def _publish(folder: str, run_id: str, names: list[str]) -> None:
    """Replace the published outputs with the run's staged ones.

    Each output is replaced by two renames (the old one aside, the new one in), atomic on a
    local disk and on HDFS. The journal written first makes the set all or nothing: a run
    killed between two renames is completed by the next run on the root, before it reads
    anything."""
    if names:
        records.write_json(join(folder, JOURNAL), {"run_id": run_id, "outputs": names})
        _move_into_place(folder, run_id, names)
        filesystem.delete(join(folder, JOURNAL))
    _remove_staging(folder, run_id)


def _remove_staging(folder: str, run_id: str) -> None:
    filesystem.delete(join(folder, STAGING, run_id))
    if not filesystem.children(join(folder, STAGING)):
        filesystem.delete(join(folder, STAGING))


def _move_into_place(folder: str, run_id: str, names: list[str]) -> None:
    """Each staged output moved to its published place; safe to repeat after a stop midway."""
    staging = join(folder, STAGING, run_id)
    for name in names:
        new, target = join(staging, name), join(folder, name)
        if not filesystem.exists(new):
            continue  # moved before the stop
        if filesystem.exists(target):
            filesystem.rename(target, join(staging, REPLACED, name))
        filesystem.rename(new, target)


def _write_run_record(folder: str, record: dict[str, Any]) -> str:
    """The manifest with this run's record first and the others after it, newest first."""
    manifest = records.read_manifest(folder)
    others = [r for r in manifest.get("runs", []) if r.get("run_id") != record["run_id"]]
    manifest["runs"] = [record, *others][:MAX_RUNS]
    return records.write_manifest(folder, manifest)
