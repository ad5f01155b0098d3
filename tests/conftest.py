"""One SparkSession for the whole suite, and helpers to build purchases by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from pyspark.sql import DataFrame, SparkSession

from hotmart_spark import runs
from hotmart_spark import schema as s
from hotmart_spark.config import Config, load_config
from hotmart_spark.jdbc import DRIVER_JAR
from hotmart_spark.session import build_session

# MariaDB Connector/J for the JDBC tests (Debian: libmariadb-java; `make tools` installs it).
JDBC_JAR = Path(DRIVER_JAR)
TEST_SETTINGS = {
    **({"spark.jars": str(JDBC_JAR)} if JDBC_JAR.is_file() else {}),
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.coalescePartitions.parallelismFirst": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # As spark-submit.sh starts the jobs' drivers (see there why).
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC -XX:InlineSmallCode=1000 -XX:FreqInlineSize=100",
}

# The suite's runs of spark-submit.sh leave the drivers' class archive aside: until one run
# succeeds, every run pays the archive's writing at exit (about 15 s) and then drops it.
# The archive has a test of its own.
os.environ["HOTMART_SPARK_CDS"] = "0"
# Python workers (the generator's pandas UDFs) run the suite's own interpreter, as the jobs'
# do theirs (cli.py).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

# 5,000 rows have few products with 10 sales; 3 first sales leave enough to model.
SMALL_CATALOGUE = ("drivers.early_sales=3", "drivers.min_products=20", "drivers.trees=10")
# For tests of what carries a run (inputs, packaging, the output root), not of its analyses:
# the same code through fewer k-means and backtest fits (about 20 s less a run).
PLUMBING = (*SMALL_CATALOGUE, "clusters.k_max=3", "forecast.max_origins=2")

HEADER = ",".join([name for name, _ in s.PURCHASE_FIELDS] + [s.VENDA])


# CI sets this (.ci/run, after `make tools`): a test whose tool is missing fails there
# instead of being skipped.
REQUIRE_TOOLS_ENV = "HOTMART_SPARK_REQUIRE_TOOLS"


def missing_tool(what: str) -> NoReturn:
    """Skip, with one line saying what is missing, or fail where the tools must be there."""
    if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        pytest.fail(f"{what} is not installed: run make tools")
    pytest.skip(f"{what} is not installed (make tools installs it)")


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    session = build_session("hotmart-spark-tests", TEST_SETTINGS)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config()


def run_stage(spark: SparkSession, job: ModuleType, config: Config) -> Any:
    """A job module's run(spark, config) as run_job runs it: inside a run on its output root."""
    name = job.__name__.rsplit(".", 1)[-1]
    with runs.output_run(config.paths.output, name, spark.sparkContext.applicationId):
        return job.run(spark, config)


def newest_run(out: Path, job: str) -> dict[str, Any]:
    """The manifest's record of the newest run of a job on an output root."""
    manifest = json.loads((out / "manifest.json").read_text())
    return next(r for r in manifest["runs"] if r["job"] == job)


@dataclass(frozen=True)
class SmallRun:
    raw: Path
    out: Path
    results: dict[str, Any]  # what each job's main returned, by stage


@pytest.fixture(scope="session")
def small_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> SmallRun:
    """Every job in order on 5,000 generated rows (1% defects), once for the whole suite."""
    from hotmart_spark.stages import (
        aggregates,
        drivers,
        forecast,
        generate,
        report,
        segments,
        validate,
    )

    root = tmp_path_factory.mktemp("small_run")
    raw, out = root / "raw", root / "out"
    stage = [f"paths.input={out}", f"paths.output={out}"]
    results: dict[str, Any] = {}
    results["generate"] = generate.run(
        spark,
        load_config(
            overrides=[
                f"paths.output={raw}",
                "generator.rows=5000",
                "generator.defects=0.01",
                "generator.files=2",
            ]
        ),
    )
    results["validate"] = run_stage(
        spark, validate, load_config(overrides=[f"paths.input={raw}", f"paths.output={out}"])
    )
    results["aggregates"] = run_stage(spark, aggregates, load_config(overrides=stage))
    results["segments"] = run_stage(spark, segments, load_config(overrides=stage))
    results["drivers"] = run_stage(
        spark, drivers, load_config(overrides=[*stage, *SMALL_CATALOGUE])
    )
    results["forecast"] = run_stage(spark, forecast, load_config(overrides=stage))
    results["report"] = run_stage(spark, report, load_config(overrides=stage))
    return SmallRun(raw, out, results)


def purchase(purchase_id: int, **fields: Any) -> dict[str, Any]:
    """A valid direct sale inside January 2016; keyword arguments change single fields."""
    row: dict[str, Any] = {
        s.PURCHASE_ID: purchase_id,
        s.PRODUCT_ID: 10,
        s.AFFILIATE_ID: 7,
        s.PRODUCER_ID: 7,
        s.BUYER_ID: 100 + purchase_id,
        s.PURCHASE_DATE: dt.datetime(2016, 1, 10, 12, 0, purchase_id % 60),
        s.PRODUCT_CREATION_DATE: dt.datetime(2015, 6, 1),
        s.PRODUCT_CATEGORY: "Podcast",
        s.PRODUCT_NICHE: "Physics",
        s.PURCHASE_VALUE: -0.2,
        s.COMMISSION: 0.0,
        s.PURCHASE_DEVICE: "Desktop",
        s.PURCHASE_ORIGIN: "Origin 00ab",
        s.IS_SOCIAL: 0,
        s.SOURCE_FILE: "file:/hand/made.csv",
        s.RAW_LINE: None,
    }
    unknown = set(fields) - set(row)
    assert not unknown, f"unknown fields {unknown}"
    row.update(fields)
    return row


def loaded(spark: SparkSession, rows: list[dict[str, Any]]) -> DataFrame:
    """Rows in the loader's output layout."""
    names = [f.name for f in s.LOADED_SCHEMA.fields]
    return spark.createDataFrame([tuple(r[n] for n in names) for r in rows], s.LOADED_SCHEMA)
