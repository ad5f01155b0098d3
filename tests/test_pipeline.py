"""The pipeline job: one session for every stage, month-range re-runs, incomplete tables, exit codes."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, MapType, StructField

from hotmart_spark import pipeline, records, warning_filters
from hotmart_spark.config import Config, load_config
from hotmart_spark.errors import UserError
from hotmart_spark.runs import output_run
from hotmart_spark.stages import stage as stages
from hotmart_spark.stages import validate
from hotmart_spark.tables import SUCCESS_MARKER, persisted
from hotmart_spark.threads import Pool
from tests.conftest import SMALL_CATALOGUE, SmallRun, run_stage

ROOT = Path(__file__).resolve().parents[1]
NAMES = [stage.name for stage in pipeline.STAGES]


def tables(root: Path) -> list[str]:
    """Every Parquet table of an output root, by path under it."""
    return sorted(p.parent.relative_to(root).as_posix() for p in root.rglob(SUCCESS_MARKER))


def partition_files(table: Path) -> dict[str, bytes]:
    return {
        p.relative_to(table).as_posix(): p.read_bytes() for p in sorted(table.rglob("*.parquet"))
    }


def comparable(df: DataFrame, digits: int | None = None) -> DataFrame:
    """Maps as sorted entry arrays (Spark cannot sort or hash a map column); with digits,
    doubles as text to that many significant digits."""

    def column(field: StructField) -> Column:
        if isinstance(field.dataType, MapType):
            return F.array_sort(F.map_entries(field.name)).alias(field.name)
        if digits is not None and isinstance(field.dataType, DoubleType):
            return F.format_string(f"%.{digits - 1}e", field.name).alias(field.name)
        return F.col(field.name)

    return df.select(*[column(f) for f in df.schema.fields])


def assert_same_table(
    spark: SparkSession,
    left: Path,
    right: Path,
    ignore: tuple[str, ...] = (),
    digits: int | None = None,
) -> None:
    """The same columns and the same rows, as multisets. Compared in Spark (exceptAll both
    ways) rather than row by row on the driver: the clean table and buyer_rfm are large."""
    expected = comparable(spark.read.parquet(str(left)).drop(*ignore), digits)
    actual = comparable(spark.read.parquet(str(right)).drop(*ignore), digits)
    assert sorted(actual.dtypes) == sorted(expected.dtypes), f"{right}: columns differ"
    actual = actual.select(*expected.columns)
    only_left, only_right = expected.exceptAll(actual), actual.exceptAll(expected)
    assert only_left.isEmpty() and only_right.isEmpty(), (
        f"{right} differs from {left}: only in the first {only_left.limit(3).collect()}, "
        f"only in the second {only_right.limit(3).collect()}"
    )


def test_the_pipeline_reproduces_the_stage_by_stage_run(
    spark: SparkSession, small_run: SmallRun, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    config = load_config(
        overrides=[f"paths.input={small_run.raw}", f"paths.output={out}", *SMALL_CATALOGUE]
    )
    record = run_stage(spark, pipeline, config)

    assert tables(out) == tables(small_run.out)
    for table in tables(out):
        assert_same_table(spark, small_run.out / table, out / table)
    run = json.loads((out / "manifest.json").read_text())["runs"][0]
    assert (run["job"], run["status"]) == ("pipeline", "succeeded")
    assert [r["stage"] for r in record["stages"]] == NAMES
    manifest = run["stages"]
    assert manifest["pipeline"]["stages"] == record["stages"]
    validated = small_run.results["validate"]
    assert record["stages"][0]["tables"] == {
        "clean": validated["rows_clean"],
        "quarantine": validated["rows_quarantined"],
    }
    assert record["stages"][1]["tables"]["marts/monthly_revenue"] == 6
    assert set(manifest) >= set(NAMES)
    # Segments and drivers ran beside aggregates, and each stage lists only its own tables.
    stage = {r["stage"]: r for r in record["stages"]}
    aggregates_end = stage["aggregates"]["started_s"] + stage["aggregates"]["seconds"]
    assert stage["segments"]["started_s"] < aggregates_end
    assert stage["drivers"]["started_s"] < aggregates_end
    assert "marts/buyer_rfm" in stage["segments"]["tables"]
    assert "marts/buyer_rfm" not in stage["aggregates"]["tables"]
    assert "marts/products" in stage["drivers"]["tables"]


def test_stages_updating_the_manifest_at_once_keep_every_update(tmp_path: Path) -> None:
    with output_run(str(tmp_path), "pipeline", "app-1") as run:

        def update(stage: int) -> None:
            for step in range(20):
                run.record_stage(f"stage{stage}", {"step": step})

        threads = [threading.Thread(target=update, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    stages = json.loads((tmp_path / "manifest.json").read_text())["runs"][0]["stages"]
    assert stages == {f"stage{i}": {"step": 19} for i in range(8)}


def without_half_of_march(raw: Path, edited: Path) -> int:
    """The raw CSV files with every other March purchase left out; returns how many left out."""
    edited.mkdir()
    dropped = seen = 0
    for file in sorted(raw.glob("*.csv")):
        lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
        date_at = lines[0].rstrip("\n").split(",").index("purchase_date")
        kept = [lines[0]]
        for line in lines[1:]:
            fields = line.split(",")
            in_march = len(fields) > date_at and fields[date_at].startswith("2016-03")
            if in_march:
                seen += 1
                if seen % 2:
                    dropped += 1
                    continue
            kept.append(line)
        (edited / file.name).write_text("".join(kept), encoding="utf-8")
    return dropped


def faked(runs: dict[str, Callable[[SparkSession, Config], object]]) -> tuple[stages.Stage, ...]:
    """The pipeline's stages with the reads and writes they declare, running `runs` instead
    (a stage not named there does nothing)."""

    def nothing(session: SparkSession, config: Config) -> None:
        return None

    return tuple(dataclasses.replace(s, run=runs.get(s.name, nothing)) for s in pipeline.STAGES)


def scheduled(
    spark: SparkSession, tmp_path: Path, runs: dict[str, Callable[[SparkSession, Config], object]]
) -> dict:
    config = load_config(overrides=[f"paths.input={tmp_path}/raw", f"paths.output={tmp_path}/out"])
    with output_run(config.paths.output, "pipeline", "app-1"):
        return pipeline.run(spark, config, faked(runs))


def ended(record: dict) -> float:
    """When a stage ended, less the 0.01 s its two rounded figures may add up to."""
    return record["started_s"] + record["seconds"] - 0.01


def a_row(session: SparkSession, config: Config, table: str) -> None:
    # With the month column that clean and quarantine are partitioned by.
    stages.write(session.range(1).withColumn("purchase_month", F.lit("2016-01")), config, table)


def test_each_stages_spark_jobs_carry_its_name_as_job_group(
    spark: SparkSession, tmp_path: Path
) -> None:
    """What Spark's UI shows for each job, also for jobs a stage starts from threads of its own
    (segments' producer clusters, the aggregates' marts)."""
    seen: dict[str, tuple[str | None, str | None]] = {}

    def stage(name: str) -> Callable[[SparkSession, object], None]:
        def run(session: SparkSession, _: object) -> None:
            group = functools.partial(session.sparkContext.getLocalProperty, "spark.jobGroup.id")
            with Pool(1, "test", session) as pool:
                seen[name] = (group(), pool.submit(group).result())

        return run

    scheduled(spark, tmp_path, {name: stage(name) for name in NAMES})
    assert seen == {name: (name, name) for name in NAMES}


def test_a_stages_pool_tasks_record_their_writes_as_the_stages(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Aggregates writes its marts from a pool of its own: the scheduler sees those writes."""

    def aggregates(session: SparkSession, config: Config) -> None:
        with Pool(2, "marts", session) as pool:
            for table in ("marts/daily_revenue", "marts/pareto"):
                pool.submit(a_row, session, config, table).result()

    record = scheduled(spark, tmp_path, {"aggregates": aggregates})
    stage = {r["stage"]: r for r in record["stages"]}
    assert stage["aggregates"]["tables"] == {"marts/daily_revenue": 1, "marts/pareto": 1}


def test_forecast_starts_once_the_daily_mart_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Forecast reads only the two daily marts of aggregates: it runs beside the rest of that
    stage instead of after it, and not before both are written."""
    forecast_started = threading.Event()
    beside: dict[str, bool] = {}

    def aggregates(session: SparkSession, config: Config) -> None:
        a_row(session, config, "marts/daily_revenue")
        beside["before the second daily mart"] = forecast_started.wait(timeout=2)
        a_row(session, config, "marts/daily_category_niche")
        beside["aggregates"] = forecast_started.wait(timeout=30)

    def forecast(session: SparkSession, config: Config) -> None:
        forecast_started.set()

    record = scheduled(spark, tmp_path, {"aggregates": aggregates, "forecast": forecast})
    assert beside == {"before the second daily mart": False, "aggregates": True}
    stage = {r["stage"]: r for r in record["stages"]}
    assert stage["report"]["started_s"] >= ended(stage["aggregates"])


def test_the_clean_tables_readers_start_once_it_is_written(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Aggregates, segments and drivers read only the clean table: they run beside the rest of
    validation. Forecast starts once the quarantine (and the daily mart) is written, before
    validation's checks end; the report waits for all of it."""
    readers = ("aggregates", "segments", "drivers")
    started = {name: threading.Event() for name in NAMES}
    seen: dict[str, bool] = {}

    def validate(session: SparkSession, config: Config) -> None:
        a_row(session, config, "clean")
        seen.update({name: started[name].wait(timeout=30) for name in readers})
        seen["forecast before the quarantine"] = started["forecast"].is_set()
        a_row(session, config, "quarantine")
        seen["forecast"] = started["forecast"].wait(timeout=30)

    def starts(name: str) -> Callable[[SparkSession, Config], None]:
        def run(session: SparkSession, config: Config) -> None:
            if name == "aggregates":
                a_row(session, config, "marts/daily_revenue")
                a_row(session, config, "marts/daily_category_niche")
            started[name].set()

        return run

    record = scheduled(
        spark, tmp_path, {**{name: starts(name) for name in NAMES}, "validate": validate}
    )
    assert seen == {
        "aggregates": True,
        "segments": True,
        "drivers": True,
        "forecast before the quarantine": False,
        "forecast": True,
    }
    stage = {r["stage"]: r for r in record["stages"]}
    assert stage["report"]["started_s"] >= ended(stage["validate"])


def test_a_month_range_replaces_exactly_its_months(
    spark: SparkSession, small_run: SmallRun, tmp_path: Path
) -> None:
    edited = tmp_path / "raw"
    assert without_half_of_march(small_run.raw, edited) > 0
    ranged, full = tmp_path / "ranged", tmp_path / "full"
    for table in ("clean", "quarantine"):
        shutil.copytree(small_run.out / table, ranged / table)
    before = {t: partition_files(ranged / t) for t in ("clean", "quarantine")}

    with stages.recording_writes() as written:
        ranged_run = run_stage(
            spark,
            validate,
            load_config(
                overrides=[
                    f"paths.input={edited}",
                    f"paths.output={ranged}",
                    "input.from_month=2016-03",
                    "input.to_month=2016-03",
                ]
            ),
        )
    run_stage(
        spark, validate, load_config(overrides=[f"paths.input={edited}", f"paths.output={full}"])
    )

    for table in ("clean", "quarantine"):
        # The re-run gives what a full run of the edited input gives (the kept months
        # still name the files they came from)...
        assert_same_table(spark, full / table, ranged / table, ignore=("source_file",))
        # ...and leaves every other month's files as they were.
        after = partition_files(ranged / table)
        untouched = {
            f: data
            for f, data in before[table].items()
            if "purchase_month=2016-03" not in f and "__HIVE_DEFAULT_PARTITION__" not in f
        }
        assert untouched, f"{table} has months besides March"
        assert {f: after[f] for f in untouched if f in after} == untouched
    march = spark.read.parquet(str(ranged / "clean")).where("purchase_month = '2016-03'").count()
    original = spark.read.parquet(str(small_run.out / "clean"))
    assert march < original.where("purchase_month = '2016-03'").count()
    # Each write records the rows it wrote: March's (and the undated quarantined rows), not
    # the whole table's.
    assert written == {
        "clean": march,
        "quarantine": ranged_run["rows_quarantined"],
    }
    assert march == ranged_run["rows_clean"] < spark.read.parquet(str(ranged / "clean")).count()


def test_a_table_without_its_success_marker_is_refused(
    spark: SparkSession, small_run: SmallRun, tmp_path: Path
) -> None:
    shutil.copytree(small_run.out / "clean", tmp_path / "clean")
    (tmp_path / "clean" / SUCCESS_MARKER).unlink()
    with pytest.raises(
        UserError, match=r"the clean table under .* is incomplete .* re-run the validate job"
    ):
        stages.read(spark, str(tmp_path), "clean")


def test_kept_tables_follow_the_sessions_default_storage_level(spark: SparkSession) -> None:
    # The benchmark's 100M-row run keeps tables on disk only through this setting alone.
    spark.conf.set("spark.sql.defaultCacheStorageLevel", "DISK_ONLY")
    try:
        with persisted(spark.range(3)) as kept:
            level = kept.storageLevel
    finally:
        spark.conf.unset("spark.sql.defaultCacheStorageLevel")
    assert (level.useDisk, level.useMemory) == (True, False)
    with persisted(spark.range(4)) as kept:
        assert (kept.storageLevel.useDisk, kept.storageLevel.useMemory) == (True, True)
    assert not kept.storageLevel.useDisk


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The pipeline as a scheduler runs it: through spark-submit.sh, with its properties."""
    return subprocess.run(
        [str(ROOT / "spark-submit.sh"), "--master", "local[2]", "jobs/pipeline.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(run: subprocess.CompletedProcess[str]) -> str:
    # spark-submit runs the job's Python with its stderr merged into the launcher's stdout.
    return run.stdout.strip().splitlines()[-1]


@pytest.mark.submit
def test_exit_codes_and_one_line_errors(small_run: SmallRun, tmp_path: Path) -> None:
    missing = run_cli("--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert last_line(missing) == f"error: input not found: {tmp_path / 'nowhere'}"
    run = json.loads((tmp_path / "out" / "manifest.json").read_text())["runs"][0]
    record = run["stages"]["pipeline"]
    assert (run["status"], record["failed_stage"], record["stages"]) == ("failed", "validate", [])
    assert run["error"] == f"UserError: input not found: {tmp_path / 'nowhere'}"

    # A file where the marts folder should be: the run ends before anything is computed.
    out = tmp_path / "blocked"
    out.mkdir()
    (out / "marts").write_text("not a folder")
    failed = run_cli("--input", str(small_run.raw), "--output", str(out))
    assert failed.returncode == 2
    assert last_line(failed) == (
        f"error: {out / 'marts'} is a file where the run writes marts/daily_revenue: move it away"
    )
    run = json.loads((out / "manifest.json").read_text())["runs"][0]
    assert (run["status"], run["stages"]) == ("failed", {})
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "marts"]


def test_a_failed_stage_lets_the_running_ones_end_and_nothing_is_published(
    spark: SparkSession, tmp_path: Path
) -> None:
    started: list[str] = []

    def validate(session: SparkSession, config: Config) -> None:
        a_row(session, config, "clean")

    def failing(session: SparkSession, config: Config) -> None:
        started.append("aggregates")
        raise RuntimeError("aggregates broke")

    def slow(name: str) -> Callable[[SparkSession, Config], None]:
        def run(session: SparkSession, config: Config) -> None:
            started.append(name)
            time.sleep(1.0)

        return run

    stages_run = {"validate": validate, "aggregates": failing, "segments": slow("segments")}
    stages_run["drivers"] = slow("drivers")
    with pytest.raises(RuntimeError, match="aggregates broke"):
        scheduled(spark, tmp_path, stages_run)
    run = json.loads((tmp_path / "out" / "manifest.json").read_text())["runs"][0]
    record = run["stages"]["pipeline"]
    assert (run["status"], run["error"]) == ("failed", "RuntimeError: aggregates broke")
    assert record["failed_stage"] == "aggregates"
    # Segments and drivers, started beside aggregates, ended; forecast and report never began.
    assert sorted(r["stage"] for r in record["stages"]) == ["drivers", "segments", "validate"]
    assert sorted(started) == ["aggregates", "drivers", "segments"]
    # Validation's table was staged, never published.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json"]


def test_warning_filters_are_changed_by_one_stage_at_a_time() -> None:
    """Forecast silences statsmodels' warnings while drivers turns some into errors: side by
    side, each block must see only its own filters."""
    first_in, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with warning_filters.catch_warnings(record=True):
            order.append("first in")
            first_in.set()
            release.wait(timeout=5)
            order.append("first out")

    def second() -> None:
        first_in.wait(timeout=5)
        with warning_filters.catch_warnings():
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_in.wait(timeout=5)
    time.sleep(0.3)
    release.set()
    for thread in threads:
        thread.join()
    assert order == ["first in", "first out", "second in"]


# Exits with the code it is given, after a Spark session (as a job: it marks a finished run
# for spark-submit.sh), or at once when given "no-spark" (as --help does).
TRIVIAL_JOB = """
import sys
if sys.argv[1] == "no-spark":
    sys.exit(0)
from pyspark.sql import SparkSession
from hotmart_spark.cli import mark_finished
spark = SparkSession.builder.getOrCreate()
print("driver options:", spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
spark.stop()
if sys.argv[1] == "0":
    mark_finished()
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.submit
def test_the_drivers_classes_are_archived_by_the_first_successful_pipeline_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spark-submit.sh: the first pipeline run that succeeds writes the class archive and every
    later job maps it; a failed run leaves none behind (a truncated archive would crash the
    JVM), and other jobs do not write one."""
    (tmp_path / "pipeline.py").write_text(TRIVIAL_JOB)
    (tmp_path / "other.py").write_text(TRIVIAL_JOB)
    archives = tmp_path / "cds"
    monkeypatch.setenv("HOTMART_SPARK_CDS", "1")
    monkeypatch.setenv("HOTMART_SPARK_CDS_DIR", str(archives))

    def submit(job: str, exit_code: int | str) -> subprocess.CompletedProcess[str]:
        script = str(tmp_path / job)
        return subprocess.run(
            [str(ROOT / "spark-submit.sh"), "--master", "local[1]", script, str(exit_code)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )

    other = submit("other.py", 0)
    assert other.returncode == 0
    assert "-XX:ArchiveClassesAtExit=" not in other.stdout
    failed = submit("pipeline.py", 3)
    assert failed.returncode == 3
    assert "-XX:ArchiveClassesAtExit=" in failed.stdout
    assert list(archives.iterdir()) == []
    # A run that ends well before starting Spark (--help) archives too few classes: none.
    no_spark = submit("pipeline.py", "no-spark")
    assert no_spark.returncode == 0
    assert list(archives.iterdir()) == []
    first = submit("pipeline.py", 0)
    assert first.returncode == 0
    made = list(archives.iterdir())
    assert [p.name for p in made] == [p.name for p in archives.glob("driver-*.jsa")]
    assert len(made) == 1
    for job in ("pipeline.py", "other.py"):
        later = submit(job, 0)
        assert later.returncode == 0
        assert f"-XX:SharedArchiveFile={made[0]}" in later.stdout
    assert list(archives.iterdir()) == made


SETTINGS_JOB = """
import json
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
conf = dict(spark.sparkContext.getConf().getAll())
keys = ("spark.hotmart.admin", "spark.sql.shuffle.partitions", "spark.serializer",
        "spark.driver.extraJavaOptions")
print("settings:", json.dumps({key: conf.get(key) for key in keys}))
spark.stop()
"""
KRYO = "org.apache.spark.serializer.KryoSerializer"


@pytest.mark.submit
def test_the_clusters_spark_defaults_reach_the_session(tmp_path: Path) -> None:
    """spark-submit.sh loads the cluster's spark-defaults.conf; the local profile's tuning
    goes over it, the cluster profile adds none, and a --conf wins over everything. The
    administrator's driver options stay beside the wrapper's."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(
        "spark.hotmart.admin from-defaults\n"
        "spark.sql.shuffle.partitions 5\n"
        "spark.driver.extraJavaOptions -Dhotmart.admin.option=kept\n"
    )
    job = tmp_path / "settings.py"
    job.write_text(SETTINGS_JOB)

    def settings(profile: str, *spark_args: str) -> dict[str, str | None]:
        done = subprocess.run(
            [str(ROOT / "spark-submit.sh"), "--master", "local[1]", *spark_args, str(job)],
            cwd=tmp_path,
            env={**os.environ, "SPARK_CONF_DIR": str(conf), "HOTMART_SPARK_PROFILE": profile},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        line = next(x for x in done.stdout.splitlines() if x.startswith("settings: "))
        return json.loads(line.removeprefix("settings: "))

    local = settings("local")
    assert local["spark.hotmart.admin"] == "from-defaults"
    assert local["spark.sql.shuffle.partitions"] == "8"  # conf/spark-local.properties
    assert local["spark.serializer"] == KRYO
    # Spark puts its own module options first; then the administrator's, then the wrapper's.
    options = local["spark.driver.extraJavaOptions"] or ""
    assert options.index("-Dhotmart.admin.option=kept") < options.index("-XX:+ExitOnOutOfMemory")
    assert "-XX:+UseParallelGC" in options
    mine = settings(
        "local",
        "--conf", "spark.sql.shuffle.partitions=3",
        "--conf", "spark.driver.extraJavaOptions=-Dmine=1",
    )  # fmt: skip
    assert mine["spark.sql.shuffle.partitions"] == "3"
    assert (mine["spark.driver.extraJavaOptions"] or "").endswith(" -Dmine=1")
    cluster = settings("cluster")
    assert cluster["spark.hotmart.admin"] == "from-defaults"
    assert cluster["spark.sql.shuffle.partitions"] == "5"
    assert cluster["spark.serializer"] is None
    options = cluster["spark.driver.extraJavaOptions"] or ""
    assert options.index("-Dhotmart.admin.option=kept") < options.index("-XX:+ExitOnOutOfMemory")
    assert "-XX:+UseParallelGC" not in options


def test_records_are_strict_json(spark: SparkSession, tmp_path: Path) -> None:
    """A number that is not finite is written as null: bare NaN and Infinity are not JSON."""
    records.update_insights(
        str(tmp_path / "report"),
        "forecast",
        {"mase": float("nan"), "months": [{"hi95": float("inf")}], "mae": 2.5, "n": 3},
    )
    text = (tmp_path / "report" / "insights.json").read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert strict["forecast"] == {"mase": None, "months": [{"hi95": None}], "mae": 2.5, "n": 3}
