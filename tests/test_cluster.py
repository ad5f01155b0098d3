"""The pipeline on a Spark standalone cluster (a master and two workers on 127.0.0.1, from the
installed pyspark) gives the marts of a local run, also when a worker dies mid-stage."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from hotmart_spark import io
from hotmart_spark.config import load_config
from jobs import generate, pipeline
from tests.test_pipeline import assert_same_table, tables

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
ROWS = 200_000
# Each run alone takes about 4 minutes here; side by side, each takes longer.
RUN_TIMEOUT_S = 1200
# What is checked is that spreading the work changes no result, not the analyses themselves:
# fewer k tried, trees and backtest origins make fewer Spark jobs through the same code.
LIGHT = [
    "clusters.k_max=3",
    "drivers.trees=10",
    "forecast.max_origins=2",
]
# The cluster run splits work as the local test session does, so the models see the same
# partitions and the results are equal, not just close.
SAME_SPLITS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.executor.cores": "1",
    "spark.executor.memory": "1g",
    "spark.cores.max": "2",
    "spark.ui.enabled": "false",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    url: str
    ui: str
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as answer:
            return int(json.load(answer)["aliveworkers"])

    def wait_until_up(self, deadline: float, logs: Path) -> None:
        while True:
            try:
                if self.alive_workers() == len(self.workers):
                    return
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the cluster did not come up; logs in {logs}")
            time.sleep(1)

    def stop(self) -> None:
        for process in [*self.workers, self.master]:
            stop(process)


def spark_class(logs: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115 - open for the process's life
    return subprocess.Popen(
        [str(SPARK_HOME / "bin" / "spark-class"), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SPARK_HOME": str(SPARK_HOME)},
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_cluster(logs: Path) -> Cluster:
    """A master and two one-core workers on 127.0.0.1, on free ports; not waited for."""
    logs.mkdir()
    port, ui_port = free_port(), free_port()
    master = spark_class(
        logs,
        "master",
        "org.apache.spark.deploy.master.Master",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--webui-port",
        str(ui_port),
    )
    url = f"spark://127.0.0.1:{port}"
    workers = [
        spark_class(
            logs,
            f"worker{i}",
            "org.apache.spark.deploy.worker.Worker",
            url,
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(free_port()),
            "--cores",
            "1",
            "--memory",
            "2g",
            "--work-dir",
            str(logs / f"work{i}"),
        )
        for i in (1, 2)
    ]
    return Cluster(url, f"http://127.0.0.1:{ui_port}", master, workers)


def submit(cluster: Cluster, raw: Path, out: Path) -> subprocess.Popen[bytes]:
    settings = [arg for key, value in SAME_SPLITS.items() for arg in ("--conf", f"{key}={value}")]
    return subprocess.Popen(
        [
            str(ROOT / "spark-submit.sh"),
            *settings,
            "jobs/pipeline.py",
            "--input",
            str(raw),
            "--output",
            str(out),
            *[arg for setting in LIGHT for arg in ("--set", setting)],
        ],
        cwd=ROOT,
        env={**os.environ, "SPARK_MASTER": cluster.url, "HOTMART_SPARK_PROFILE": "cluster"},
        stdout=open(out.parent / f"{out.name}.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_a_worker_after_validation(
    cluster: Cluster, running: subprocess.Popen[bytes], out: Path
) -> str:
    """Kills the first worker (and its executor) once the clean table is complete, while
    validation writes the rest or the next stages run. Empty when that worked, else why not."""
    deadline = time.time() + RUN_TIMEOUT_S
    while not (out / "clean" / io.SUCCESS_MARKER).exists():
        if running.poll() is not None:
            return f"the pipeline ended (exit {running.returncode}) before validation finished"
        if time.time() > deadline:
            return f"validation did not finish in {RUN_TIMEOUT_S} s"
        time.sleep(0.5)
    victim = cluster.workers[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    return "" if running.poll() is None else "the pipeline ended before the worker was killed"


@dataclass(frozen=True)
class Runs:
    """The same generated input through the pipeline on local[2] and on two clusters, one of
    which lost a worker mid-run."""

    local: Path
    cluster: Path
    cluster_exit: int
    worker_killed: Path
    worker_killed_exit: int
    kill_problem: str


@pytest.fixture(scope="module")
def runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """About 200,000 generated rows through the three runs at once: each run is mostly small
    jobs and waits between them, so side by side they take little longer than the slowest."""
    root = tmp_path_factory.mktemp("cluster_data")
    raw, local = root / "raw", root / "local"
    out, killed_out = root / "cluster", root / "worker_killed"
    generate.main(
        spark,
        load_config(
            overrides=[f"paths.output={raw}", f"generator.rows={ROWS}", "generator.files=4"]
        ),
    )
    with contextlib.ExitStack() as cleanup:
        clusters = []
        for name in ("cluster_logs", "worker_killed_logs"):
            clusters.append(start_cluster(root / name))
            cleanup.callback(clusters[-1].stop)
        deadline = time.time() + 90
        for running_cluster in clusters:
            running_cluster.wait_until_up(deadline, root)
        submitted = [submit(clusters[0], raw, out), submit(clusters[1], raw, killed_out)]
        for process in submitted:
            cleanup.callback(stop, process)
        with ThreadPoolExecutor(1, "worker-killer") as pool:
            killing = pool.submit(
                kill_a_worker_after_validation, clusters[1], submitted[1], killed_out
            )
            paths = [f"paths.input={raw}", f"paths.output={local}"]
            pipeline.main(spark, load_config(overrides=[*paths, *LIGHT]))
            kill_problem = killing.result()
        exits = [process.wait(timeout=RUN_TIMEOUT_S) for process in submitted]
    yield Runs(local, out, exits[0], killed_out, exits[1], kill_problem)


# RFM scores come from percentile_approx cuts, whose sketches merge in the order tasks
# finish: a buyer within the sketch's error of a cut may score one apart between runs.
SCORES = ("r_score", "f_score", "m_score", "segment")
SCORED_TABLES = {"marts/buyer_rfm": SCORES, "marts/rfm_segments": ("buyers", "buyer_share",
                 "value", "value_share", "top_categories")}  # fmt: skip
MIN_SAME_SEGMENT = 0.999


def log_tail(out: Path) -> str:
    """The end of a submitted run's log, for a failed assertion's message."""
    return (out.parent / f"{out.name}.log").read_text()[-3000:]


def assert_same_marts(spark: SparkSession, expected: Path, actual: Path) -> None:
    """Every table equal, doubles to 9 significant digits (Spark adds in another order when
    the work is spread over other executors), RFM scores for all but 0.1% of buyers."""
    assert tables(actual) == tables(expected)
    for table in tables(expected):
        ignore = SCORED_TABLES.get(table, ())
        assert_same_table(spark, expected / table, actual / table, ignore=ignore, digits=9)
    left = spark.read.parquet(str(expected / "marts" / "buyer_rfm"))
    right = spark.read.parquet(str(actual / "marts" / "buyer_rfm"))
    same = left.join(right, ["buyer_id", *SCORES]).count()
    assert same >= MIN_SAME_SEGMENT * left.count()


def test_the_cluster_gives_the_local_marts(spark: SparkSession, runs: Runs) -> None:
    assert runs.cluster_exit == 0, log_tail(runs.cluster)
    assert_same_marts(spark, runs.local, runs.cluster)


def test_the_pipeline_survives_a_worker_killed_mid_stage(spark: SparkSession, runs: Runs) -> None:
    assert not runs.kill_problem, f"{runs.kill_problem}\n{log_tail(runs.worker_killed)}"
    assert runs.worker_killed_exit == 0, log_tail(runs.worker_killed)
    assert_same_marts(spark, runs.local, runs.worker_killed)
    manifest = json.loads((runs.worker_killed / "manifest.json").read_text())
    assert manifest["stages"]["pipeline"]["status"] == "succeeded"
