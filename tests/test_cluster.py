"""The pipeline on a Spark standalone cluster (a master and two workers on 127.0.0.1, from the
installed pyspark) gives the marts of a local run, submitted from the artifact `make dist`
builds, in a folder outside the checkout, with a worker killed mid-stage; and spark-submit.sh
ships the checkout's package to the cluster's executors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import pipeline
from hotmart_spark.config import load_config
from hotmart_spark.stages import generate
from hotmart_spark.tables import SUCCESS_MARKER
from tests.conftest import run_stage
from tests.test_pipeline import assert_same_table, tables

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
ROWS = 200_000
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
# The executors here are fresh JVMs on 200,000 rows: the quick C1 compiler alone costs them
# less than the C2 compiling it spares (a cluster run took 128 and 140 s instead of 201 s).
# It changes no result; long-lived executors on real data are the opposite case.
SHORT_LIVED_EXECUTORS = {"spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    url: str
    ui: str
    workers: list[subprocess.Popen[bytes]]
    # Each worker's work-dir is logs/work<i>.
    logs: Path

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as answer:
            return int(json.load(answer)["aliveworkers"])


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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("cluster")
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
    running = Cluster(url, f"http://127.0.0.1:{ui_port}", workers, logs)
    try:
        deadline = time.time() + 90
        while True:
            try:
                if running.alive_workers() == 2:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"the cluster did not come up; logs in {logs}")
            time.sleep(1)
        yield running
    finally:
        for process in [*workers, master]:
            stop(process)


@pytest.fixture(scope="module")
def local_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """About 200,000 generated rows and the pipeline's output on local[2]."""
    root = tmp_path_factory.mktemp("cluster_data")
    raw, out = root / "raw", root / "local"
    generate.run(
        spark,
        load_config(
            overrides=[f"paths.output={raw}", f"generator.rows={ROWS}", "generator.files=4"]
        ),
    )
    paths = [f"paths.input={raw}", f"paths.output={out}"]
    run_stage(spark, pipeline, load_config(overrides=[*paths, *LIGHT]))
    return raw, out


SETTINGS = [
    arg
    for key, value in {**SAME_SPLITS, **SHORT_LIVED_EXECUTORS}.items()
    for arg in ("--conf", f"{key}={value}")
]


@dataclass
class Build:
    process: subprocess.Popen[bytes]
    folder: Path
    log: Path


@pytest.fixture(scope="module")
def artifact_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Build]:
    """`make dist`'s build, started before the cluster and the local run and going on beside
    them: it is pip and gzip on one core (about 50 s alone)."""
    built, logs = tmp_path_factory.mktemp("dist"), tmp_path_factory.mktemp("dist_log")
    with open(logs / "dist.log", "wb") as log:
        process = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "dist.sh"), str(built)],
            env={**os.environ, "PYTHON": sys.executable},
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, which stop() ends whole (pip, venv-pack).
            start_new_session=True,
        )
    try:
        yield Build(process, built, logs / "dist.log")
    finally:
        stop(process)


@pytest.fixture(scope="module")
def artifact(artifact_build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make dist` builds, copied to a folder outside the checkout, with the environment
    archive unpacked there as well for the driver (client mode), as README says."""
    built = artifact_build.folder
    code = artifact_build.process.wait(timeout=900)
    assert code == 0, artifact_build.log.read_text()[-3000:]
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for item in built.iterdir():
        (elsewhere / item.name).write_bytes(item.read_bytes())
    with tarfile.open(elsewhere / "hotmart-spark-env.tar.gz") as archive:
        archive.extractall(elsewhere / "env", filter="tar")
    return elsewhere


def submit_artifact(
    cluster: Cluster, artifact: Path, raw: Path, out: Path
) -> subprocess.Popen[bytes]:
    """The README's client-mode command, from the artifact's folder: the output root named
    by a URI, the analysis settings in a three-line file of the user's own."""
    (artifact / "light.toml").write_text("".join(f"{setting}\n" for setting in LIGHT))
    env = {
        **os.environ,
        "PYSPARK_DRIVER_PYTHON": str(artifact / "env" / "bin" / "python"),
        "PYSPARK_PYTHON": "./environment/bin/python",
    }
    for inherited in ("PYTHONPATH", "SPARK_HOME", "HOTMART_SPARK_PROFILE"):
        env.pop(inherited, None)
    return subprocess.Popen(
        [
            str(SPARK_HOME / "bin" / "spark-submit"),
            "--master",
            cluster.url,
            "--archives",
            "hotmart-spark-env.tar.gz#environment",
            *SETTINGS,
            "hotmart-spark.py",
            "pipeline",
            "--input",
            str(raw),
            "--output",
            out.as_uri(),
            "--config",
            "light.toml",
        ],
        cwd=artifact,
        env=env,
        stdout=open(out.parent / f"{out.name}.log", "wb"),
        stderr=subprocess.STDOUT,
    )


def submit_generator(cluster: Cluster, out: Path, settings: list[str]) -> int:
    """The generate job through the checkout's spark-submit.sh with the cluster profile; its
    exit code."""
    with open(out.parent / f"{out.name}.log", "wb") as log:
        return subprocess.run(
            [
                str(ROOT / "spark-submit.sh"),
                "--properties-file",
                str(ROOT / "conf" / "spark-cluster.properties"),
                *SETTINGS,
                "jobs/generate.py",
                "--output",
                str(out),
                *[arg for setting in settings for arg in ("--set", setting)],
            ],
            cwd=ROOT,
            env={**os.environ, "SPARK_MASTER": cluster.url, "HOTMART_SPARK_PROFILE": "cluster"},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        ).returncode


# RFM scores come from percentile_approx cuts, whose sketches merge in the order tasks
# finish: a buyer within the sketch's error of a cut may score one apart between runs.
SCORES = ("r_score", "f_score", "segment")
# The lifetime summary's deciles and its median cut are percentile_approx cuts too.
SCORED_TABLES = {"marts/buyer_rfm": SCORES, "marts/rfm_segments": ("buyers", "buyer_share",
                 "value", "value_share", "top_categories", "top_category_lifts"),
                 "marts/buyer_lifetime": ("segment", "repeat_value"),
                 "marts/lifetime_summary": ("buyers", "mean_p_alive", "expected_purchase_days",
                 "expected_value", "value_share", "rank", "top_segment")}  # fmt: skip
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
    # A mean of a few values with ten decimals can sit exactly between two 9-digit roundings,
    # where the order of the additions decides: compared by buyer, to 1e-12, instead.
    means = (
        spark.read.parquet(str(expected / "marts" / "buyer_lifetime"))
        .alias("l")
        .join(spark.read.parquet(str(actual / "marts" / "buyer_lifetime")).alias("r"), "buyer_id")
    )
    worst = means.agg(
        F.max(F.abs(F.col("l.repeat_value") / F.col("r.repeat_value") - 1)),
        F.sum((F.col("l.repeat_value").isNull() != F.col("r.repeat_value").isNull()).cast("int")),
    ).first()
    assert (worst[0] or 0.0) < 1e-12 and worst[1] == 0
    left = spark.read.parquet(str(expected / "marts" / "buyer_rfm"))
    right = spark.read.parquet(str(actual / "marts" / "buyer_rfm"))
    same = left.join(right, ["buyer_id", *SCORES]).count()
    assert same >= MIN_SAME_SEGMENT * left.count()


def test_the_artifact_on_the_cluster_gives_the_local_marts_with_a_worker_killed(
    artifact_build: Build,
    spark: SparkSession,
    cluster: Cluster,
    local_run: tuple[Path, Path],
    artifact: Path,
) -> None:
    raw, local = local_run
    out = local.parent / "cluster"
    assert not (artifact / "hotmart_spark").exists()
    running = submit_artifact(cluster, artifact, raw, out)
    # Once the clean table is complete, validation is still writing the rest or the aggregates
    # stage runs: kill a worker with its executor then. The other one finishes the run.
    deadline = time.time() + 600
    while not (out / "clean" / SUCCESS_MARKER).exists():
        assert running.poll() is None, log_tail(out)
        assert time.time() < deadline, "validation did not finish in 10 minutes"
        time.sleep(0.5)
    victim = cluster.workers[0]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert running.poll() is None, "the pipeline ended before the worker was killed"
    assert running.wait(timeout=900) == 0, log_tail(out)
    assert_same_marts(spark, local, out)
    # The executors ran the archive's Python (its path is relative to their work-dir).
    run = json.loads((out / "manifest.json").read_text())["runs"][0]
    application = run["application_id"]
    unpacked = list(cluster.logs.glob(f"work*/{application}/*/environment/bin/python"))
    assert unpacked, f"no executor of {application} unpacked the environment"
    assert run["status"] == "succeeded"
    assert run["output"] == out.as_uri()


def test_spark_submit_sh_ships_the_package_to_the_cluster(
    spark: SparkSession, cluster: Cluster, tmp_path: Path
) -> None:
    """The generator's rows are drawn in pandas UDFs, so the executors import the package
    from the zip spark-submit.sh ships (--py-files): the cluster's rows are the local ones.
    Runs after the case above, on the worker it left."""
    settings = ["generator.rows=5000", "generator.files=2", "generator.format=parquet"]
    local, remote = tmp_path / "local", tmp_path / "cluster"
    generate.run(spark, load_config(overrides=[f"paths.output={local}", *settings]))
    assert submit_generator(cluster, remote, settings) == 0, log_tail(remote)
    # The z-scores' mean and sd add up in the order the partial sums arrive.
    assert_same_table(spark, local, remote, digits=9)
