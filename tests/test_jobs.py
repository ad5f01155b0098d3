from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import cli, generate, pipeline
from hotmart_spark import schema as s
from hotmart_spark.analysis import drivers
from hotmart_spark.analysis import forecast as fc
from hotmart_spark.analysis import reconcile as rc
from hotmart_spark.config import load_config
from hotmart_spark.errors import UserError
from hotmart_spark.stages import aggregates as aggregates_job
from hotmart_spark.stages import forecast as forecast_job
from hotmart_spark.stages import generate as generate_job
from hotmart_spark.stages import stage as stages
from hotmart_spark.stages import validate as validate_job
from tests.conftest import (
    HEADER,
    PLUMBING,
    SmallRun,
    loaded,
    newest_run,
    purchase,
    run_stage,
)

ROOT = Path(__file__).resolve().parents[1]


def read(spark: SparkSession, out: Path, mart: str) -> DataFrame:
    return spark.read.parquet(str(out / "marts" / mart))


def insights_of(out: Path) -> dict:
    return json.loads((out / "report" / "insights.json").read_text())


def test_generate(small_run: SmallRun) -> None:
    checks = small_run.results["generate"]
    assert checks[0].metric == "rows" and checks[0].ok
    assert json.loads((small_run.raw / "_calibration.json").read_text())[0]["metric"] == "rows"


def test_generate_leaves_the_truth_after_the_period(
    spark: SparkSession, small_run: SmallRun
) -> None:
    truth = json.loads((small_run.raw / "_truth.json").read_text())
    assert truth["buyers"]["r"] == generate.BUYER_RATE_SHAPE
    months = truth["after_period"]["months"]
    assert [m["month"] for m in months] == ["2016-07", "2016-08", "2016-09"]
    buyers = spark.read.parquet(str(small_run.raw / generate.TRUTH_BUYERS))
    clean = spark.read.parquet(str(small_run.out / "clean"))
    # Every buyer of the log has its row (defects copy rows, they add no buyer).
    assert buyers.count() == truth["buyers"]["written_buyers"]
    assert clean.select(s.BUYER_ID).distinct().join(buyers, s.BUYER_ID, "left_anti").count() == 0
    # The report sets each forecast month against the simulated one.
    insights = insights_of(small_run.out)
    assert insights["run"]["planted"]["after_period"]["months"] == months
    page = (small_run.out / "report" / "report.html").read_text()
    assert "value in July 2016 (forecast; simulated past the period)" in page


def test_validate(spark: SparkSession, small_run: SmallRun) -> None:
    out, record = small_run.out, small_run.results["validate"]
    assert record["rows_in"] == record["rows_clean"] + record["rows_quarantined"]
    assert record["rows_quarantined"] > 0
    run = newest_run(out, "validate")
    stage = run["stages"]["validate"]
    assert stage["rows_in"] == record["rows_in"]
    assert stage["z_min"] == record["z_min"]
    assert stage["parameters"]["period"]["start"] == "2016-01-01"
    assert set(run["versions"]) == {"hotmart_spark", "pyspark", "python"}
    months = sorted(p.name for p in (out / "clean").glob("purchase_month=*"))
    assert months == [f"purchase_month=2016-0{m}" for m in range(1, 7)]
    assert spark.read.parquet(str(out / "clean")).count() == record["rows_clean"]
    # Timestamps as Parquet's INT64 microseconds (logical type TIMESTAMP), not legacy INT96.
    written = next((out / "clean").rglob("*.parquet"))
    parquet = pq.ParquetFile(written)
    column = parquet.schema.column(parquet.schema_arrow.get_field_index(s.PURCHASE_DATE))
    assert column.physical_type == "INT64"
    assert column.converted_type == "TIMESTAMP_MICROS"
    run = insights_of(out)["run"]
    assert run["rows_in"] == record["rows_in"]
    assert run["value_unit"] == "relative value units"
    assert run["synthetic"] is True


def test_aggregates(spark: SparkSession, small_run: SmallRun) -> None:
    out, record, result = (
        small_run.out,
        small_run.results["validate"],
        small_run.results["aggregates"],
    )
    clean_units = record["rows_clean"]
    units = {
        mart: read(spark, out, mart).agg(F.sum("units")).first()[0]
        for mart in ("producers", "daily_revenue", "monthly_revenue", "weekday_hour", "channels")
    }
    # Every purchase lands in exactly one row of each of these marts.
    assert units == dict.fromkeys(units, clean_units)
    breakdowns = read(spark, out, "breakdowns").groupBy("dimension").agg(F.sum("units"))
    assert dict(breakdowns.collect()) == dict.fromkeys(
        ["category", "device", "niche", "origin", "product_age", "social_network"], clean_units
    )
    assert read(spark, out, "daily_revenue").count() == 182
    assert read(spark, out, "producer_concentration_monthly").count() == 6
    channels = {r["channel"]: r for r in read(spark, out, "channels").collect()}
    affiliates = read(spark, out, "affiliates")
    assert affiliates.agg(F.sum("units")).first()[0] == channels["affiliate"]["units"]
    assert read(spark, out, "affiliate_concentration").first()["n"] == affiliates.count()
    pareto = read(spark, out, "pareto").orderBy("producer_share").collect()
    shares = [r["revenue_share"] for r in pareto]
    assert shares == sorted(shares)
    assert (pareto[-1]["producer_share"], shares[-1]) == (pytest.approx(1.0), pytest.approx(1.0))
    insights = json.loads((out / "report" / "insights.json").read_text())
    producers = insights["producers"]
    assert set(producers) >= {"n_producers", "n_top", "top_revenue_share", "gini", "hhi"}
    assert set(producers["top_share_by_revenue"]) == {"0.01", "0.05", "0.1", "0.2"}
    assert [m["month"] for m in insights["trends"]["monthly"]] == [
        f"2016-0{m}" for m in range(1, 7)
    ]
    assert insights["run"]["rows_in"] == record["rows_in"]
    clean_value = spark.read.parquet(str(out / "marts" / "daily_revenue")).agg({"value": "sum"})
    producer_value = spark.read.parquet(str(out / "marts" / "producers")).agg({"revenue": "sum"})
    assert clean_value.first()[0] == pytest.approx(producer_value.first()[0])
    assert newest_run(out, "aggregates")["stages"]["aggregates"]["marts"] == sorted(result["marts"])


def test_segments(spark: SparkSession, small_run: SmallRun) -> None:
    out, record, segments = (
        small_run.out,
        small_run.results["validate"],
        small_run.results["segments"],
    )
    buyer_rfm = spark.read.parquet(str(out / "marts" / "buyer_rfm"))
    assert buyer_rfm.columns[:7] == [
        "buyer_id",
        "recency",
        "frequency",
        "monetary",
        "r_score",
        "f_score",
        "segment",
    ]
    assert buyer_rfm.agg({"frequency": "sum"}).first()[0] == record["rows_clean"]
    insights = json.loads((out / "report" / "insights.json").read_text())
    rfm_rows = insights["segments"]["rfm"]
    assert sum(r["buyers"] for r in rfm_rows) == buyer_rfm.count()
    assert sum(r["value_share"] for r in rfm_rows) == pytest.approx(1.0)
    assert segments["reference_day"].isoformat() == "2016-07-01"
    clustered = spark.read.parquet(str(out / "marts" / "producer_clusters"))
    assert clustered.count() == spark.read.parquet(str(out / "marts" / "producers")).count()
    profiles = insights["segments"]["producer_clusters"]
    assert len(profiles) == segments["clusters_k"]
    assert sum(p["producers"] for p in profiles) == clustered.count()
    assert sum(p["value_share"] for p in profiles) == pytest.approx(1.0)
    profile_mart = spark.read.parquet(str(out / "marts" / "producer_cluster_profiles"))
    assert sorted((r["cluster"], r["label"], r["producers"]) for r in profile_mart.collect()) == [
        (p["cluster"], p["label"], p["producers"]) for p in profiles
    ]
    silhouettes = spark.read.parquet(str(out / "marts" / "producer_cluster_silhouettes"))
    assert silhouettes.count() == len(segments["cluster_silhouettes"])


def test_drivers(spark: SparkSession, small_run: SmallRun) -> None:
    out, record, found = small_run.out, small_run.results["validate"], small_run.results["drivers"]
    product_mart = spark.read.parquet(str(out / "marts" / "products"))
    clean = spark.read.parquet(str(out / "clean"))
    assert product_mart.count() == clean.select("product_id").distinct().count()
    assert product_mart.agg({"units": "sum"}).first()[0] == record["rows_clean"]
    model = found["model"]
    assert model["note"] == ""
    assert model["n_train"] + model["n_holdout"] == model["products_modelled"]
    assert model["products_modelled"] >= 20
    assert -1.0 < model["holdout_r2"] <= 1.0
    assert {f["feature"] for f in found["features"]} == set(drivers.FEATURES)
    # A few dozen products: too few sold first through an affiliate for an effect estimate,
    # which the stage says instead of estimating.
    assert found["effect"] is None and found["effects"] == []
    assert "each side needs 10" in found["effect_note"]
    stored = json.loads((out / "report" / "insights.json").read_text())["drivers"]
    assert stored["effect_note"] == found["effect_note"]
    drivers_mart = read(spark, out, "product_drivers")
    assert sorted(r["feature"] for r in drivers_mart.collect()) == sorted(drivers.FEATURES)
    assert read(spark, out, "product_model").collect()[0]["name"] == model["name"]
    assert read(spark, out, "product_effects").count() == 0
    groups = read(spark, out, "product_feature_groups").groupBy("feature").agg(F.sum("products"))
    # Each feature's levels split the whole catalogue.
    assert dict(groups.collect()) == dict.fromkeys(
        ["category", "niche", drivers.PROGRAMME_SEEN], product_mart.count()
    )


def test_forecast(spark: SparkSession, small_run: SmallRun) -> None:
    out, record, forecast = (
        small_run.out,
        small_run.results["validate"],
        small_run.results["forecast"],
    )
    insights = json.loads((out / "report" / "insights.json").read_text())["forecast"]
    assert insights["last_complete_month"] == "2016-06"
    assert [m["month"] for m in insights["months"]] == ["2016-07", "2016-08", "2016-09"]
    # Every week back from 31 May (June is the last backtest month) to the 28th day.
    assert len(insights["backtest_origins"]) == 18
    assert insights["backtest_origins"][-1] == "2016-05-31"
    assert insights["first_scored_origin"] == "2016-04-05"
    assert {r["model"] for r in insights["backtest"]} >= {"naive_last_month", "sarimax_level"}
    total = insights["total"]
    months_sum = sum(m["value"] for m in insights["months"])
    assert total["mean"] == pytest.approx(months_sum)
    assert 0 <= total["lo95"] <= total["lo80"] <= total["hi80"] <= total["hi95"]
    monthly = spark.read.parquet(str(out / "marts" / "forecast_monthly")).orderBy("month")
    actual = [r["value"] for r in monthly.where("kind = 'actual'").collect()]
    expected = [
        m["value"]
        for m in json.loads((out / "report" / "insights.json").read_text())["trends"]["monthly"]
    ]
    assert actual == pytest.approx(expected)
    ahead = monthly.where("kind = 'forecast'").collect()
    assert [r["model"] for r in ahead] == [forecast["model"]] * 3
    for row in ahead:
        assert row["lo95"] <= row["lo80"] <= row["value"] <= row["hi80"] <= row["hi95"]
        assert row["platform_revenue"] == pytest.approx(0.1 * row["value"])
    daily = spark.read.parquet(str(out / "marts" / "forecast_daily"))
    assert daily.where("actual IS NOT NULL").count() == 182
    assert daily.where("forecast IS NOT NULL").count() == 31 + 31 + 30
    backtest = read(spark, out, "forecast_backtest")
    scored = backtest.where(f"horizon = 'all' AND half = '{insights['backtest_half']}'")
    assert sorted(r["model"] for r in scored.collect()) == sorted(
        r["model"] for r in insights["backtest"]
    )
    chosen = backtest.where("chosen AND half = 'selection'").select("model", "horizon").collect()
    assert sorted(chosen) == [(forecast["model"], h) for h in ("1", "2", "3", "all", "total")]
    errors = read(spark, out, "forecast_backtest_errors")
    origins = sorted(r["origin"] for r in errors.select("origin").distinct().collect())
    assert origins == insights["backtest_origins"]
    models = read(spark, out, "forecast_models").where("chosen").collect()
    assert [r["model"] for r in models] == [forecast["model"]]
    quarantined_days = spark.read.parquet(str(out / "marts" / "forecast_quarantined_days"))
    assert (
        quarantined_days.agg({"rows_quarantined": "sum"}).first()[0] == record["rows_quarantined"]
    )


def test_aggregates_without_a_clean_table(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config(overrides=[f"paths.input={tmp_path}", f"paths.output={tmp_path}"])
    with pytest.raises(UserError, match="no clean table under"):
        run_stage(spark, aggregates_job, config)


def test_a_file_without_a_bad_row_validates(spark: SparkSession, tmp_path: Path) -> None:
    """An empty quarantine is a normal outcome: written with its columns, read back empty."""
    source, out = tmp_path / "in", tmp_path / "out"
    rows = loaded(spark, [purchase(i) for i in (1, 2, 3)])
    rows.drop(s.SOURCE_FILE, s.RAW_LINE).write.parquet(str(source))
    record = run_stage(
        spark, validate_job, load_config(overrides=[f"paths.input={source}", f"paths.output={out}"])
    )
    assert (record["rows_in"], record["rows_clean"], record["rows_quarantined"]) == (3, 3, 0)
    quarantine = stages.read(spark, str(out), "quarantine")
    assert quarantine.columns == s.QUARANTINE_SCHEMA.fieldNames()
    assert quarantine.isEmpty()
    assert sorted(r[s.PURCHASE_ID] for r in stages.read(spark, str(out), "clean").collect()) == [
        1,
        2,
        3,
    ]


def test_a_clean_export_runs_the_whole_pipeline(spark: SparkSession, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate_job.run(
        spark,
        load_config(
            overrides=[f"paths.output={raw}", "generator.rows=3000", "generator.defects=0"]
        ),
    )
    config = load_config(overrides=[f"paths.input={raw}", f"paths.output={out}", *PLUMBING])
    record = run_stage(spark, pipeline, config)
    validated = next(r for r in record["stages"] if r["stage"] == "validate")
    assert validated["tables"]["quarantine"] == 0
    assert validated["tables"]["clean"] == 3000
    forecast = json.loads((out / "report" / "insights.json").read_text())["forecast"]
    assert forecast["flagged_days"] == []
    assert (out / "report" / "report.html").is_file()


def test_header_only_input_has_no_rows(spark: SparkSession, tmp_path: Path) -> None:
    source = tmp_path / "header.csv"
    source.write_text(HEADER + "\n", encoding="utf-8")
    config = load_config(overrides=[f"paths.input={source}", f"paths.output={tmp_path / 'out'}"])
    with pytest.raises(UserError, match="input has no rows"):
        run_stage(spark, validate_job, config)


def test_forecast_without_the_daily_mart(spark: SparkSession, tmp_path: Path) -> None:
    config = load_config(overrides=[f"paths.input={tmp_path}", f"paths.output={tmp_path}"])
    with pytest.raises(
        UserError, match=r"no marts/daily_revenue table under .*run the aggregates job first"
    ):
        run_stage(spark, forecast_job, config)


def test_numerical_libraries_run_on_one_thread_in_every_thread() -> None:
    """The stages fit their models in threads of their own, where a limit set at run time
    does not reach OpenMP; importing the package must set it for every thread."""
    code = "\n".join(
        [
            "import hotmart_spark, numpy, sklearn.cluster",
            "from concurrent.futures import ThreadPoolExecutor",
            "from threadpoolctl import threadpool_info",
            "with ThreadPoolExecutor(1) as pool:",
            "    pools = pool.submit(threadpool_info).result()",
            "print(sorted({(p['user_api'], p['num_threads']) for p in pools}))",
        ]
    )
    limits = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {name: value for name, value in os.environ.items() if name not in limits}
    printed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert printed.strip() == "[('blas', 1), ('openmp', 1)]"


def test_the_module_names_its_jobs_when_none_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == cli.EXIT_USER_ERROR
    assert cli.main(["nope", "--input", "x"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "unknown job 'nope'" in err
    assert all(f"  {name} " in err for name in cli.JOBS)
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m hotmart_spark <job>")
    assert "unknown job" not in out


@pytest.mark.submit
def test_an_installed_wheel_alone_runs_the_jobs(small_run: SmallRun, tmp_path: Path) -> None:
    """Built and installed apart from the checkout, run from a folder outside it: the whole
    pipeline, so every stage's imports and the package's data files (defaults, template)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("hotmart_spark-*.whl")
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "-t", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere.mkdir()
    # Spark's settings come from the environment, as for any pyspark program: Spark's default
    # of 200 shuffle partitions on 5,000 rows would make this a 3-minute test.
    submit_args = "--master local[2] --conf spark.sql.shuffle.partitions=2 pyspark-shell"
    env = {**os.environ, "PYTHONPATH": str(site), "PYSPARK_SUBMIT_ARGS": submit_args}
    env.pop("PYSPARK_PYTHON", None)

    def job(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotmart_spark", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    imported = subprocess.run(
        [sys.executable, "-c", "import hotmart_spark.cli as m; print(m.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip().startswith(str(site))
    # The test is about what the wheel holds. The small run's input has 1% of each defect:
    # about 7% of it is quarantined, above the default gate, which would end the job with
    # code 5.
    lighter = [*PLUMBING, "quality.max_quarantine_share=0.2"]
    overrides = [arg for key in lighter for arg in ("--set", key)]
    ran = job("pipeline", "--input", str(small_run.raw), "--output", "out", *overrides)
    assert ran.returncode == 0, ran.stderr[-2000:]
    manifest = json.loads((elsewhere / "out" / "manifest.json").read_text())
    assert manifest["runs"][0]["status"] == "succeeded"
    assert (elsewhere / "out" / "report" / "report.html").is_file()


def test_forecast_per_category_adds_up_to_the_total(
    spark: SparkSession, small_run: SmallRun
) -> None:
    out = small_run.out
    insights = json.loads((out / "report" / "insights.json").read_text())["forecast"]
    grouping = insights["series"]["product_category"]
    series = read(spark, out, "forecast_series").toPandas()
    # 81% Phisical book, 16% Podcast; the other categories are below 5% each.
    assert list(dict.fromkeys(series["series"])) == ["total", "Phisical book", "Podcast", "other"]
    assert series.groupby("series")["share"].first().drop("total").sum() == pytest.approx(1.0)
    wide = series.pivot(index="horizon", columns="series", values="value")
    assert list(wide.index) == ["1", "2", "3", "total"]
    parts = wide[["Phisical book", "Podcast", "other"]].sum(axis=1)
    assert wide["total"].to_numpy() == pytest.approx(parts.to_numpy(), rel=1e-12)
    for _, months in wide.drop(index="total").items():
        assert months.sum() == pytest.approx(wide.loc["total", months.name], rel=1e-12)
    # The total's series is its headline forecast, centred as the headline is.
    headline = [m["value"] for m in insights["months"]]
    assert wide.drop(index="total").index.tolist() == ["1", "2", "3"]
    base = series[series["series"] == "total"].set_index("horizon")["base"]
    assert base[["1", "2", "3"]].tolist() == pytest.approx(headline, rel=1e-12)
    assert grouping["method"] in rc.METHODS
    assert grouping["helped"] == (grouping["relative_mae"] < 1)
    # Each series ran the total's candidates and backtest: the same baselines, the same
    # origins and halves (its chosen model's windows are what was reconciled).
    models = read(spark, out, "forecast_series_models").toPandas()
    for name, own in models.groupby("series"):
        assert set(own["model"]) >= {"naive_last_month", "naive_mean_3_months"}, name
        assert own[own["chosen"]]["model"].nunique() == 1, name
        assert own.groupby("half")["n"].max().to_dict() == {"evaluation": 13, "selection": 27}
    scores = read(spark, out, "forecast_reconciliation").toPandas()
    assert set(scores["method"]) == set(rc.METHODS)
    # The series are the total's days split by category: their daily sums are the total's.
    by_day = read(spark, out, "daily_category_niche").groupBy("day").agg(F.sum("value").alias("v"))
    total = read(spark, out, "daily_revenue").join(by_day, "day")
    assert total.where(F.abs(F.col("v") - F.col("value")) > 1e-9).count() == 0


def test_labels_below_the_share_or_the_count_are_other(spark: SparkSession) -> None:
    daily = spark.createDataFrame(
        [("A", 60.0), ("B", 30.0), ("C", 6.0), ("D", 4.0), (None, 0.0)],
        "product_category string, value double",
    )
    kept, shares = forecast_job.kept_labels(daily, "product_category", 0.05, 8)
    assert kept == ["A", "B", "C"]
    assert shares == pytest.approx({"A": 0.6, "B": 0.3, "C": 0.06, "D": 0.04})
    assert forecast_job.kept_labels(daily, "product_category", 0.05, 2)[0] == ["A", "B"]


def test_a_grouping_without_two_series_is_skipped_with_its_reason(spark: SparkSession) -> None:
    daily = spark.createDataFrame(
        [("2016-01-01", "A", "n1", 5.0), ("2016-01-02", "A", "n1", 0.0)],
        "day string, product_category string, product_niche string, value double",
    )
    settings = load_config(overrides=["forecast.series_by=product_category,product_niche"]).forecast
    fitted = forecast_job.fit_series(daily, "2016-01-01", "2016-01-31", settings)
    assert fitted.kept == {}
    assert set(fitted.skipped) == {"product_category", "product_niche"}
    assert fitted.skipped["product_category"].startswith(
        "not forecast per product_category: it has fewer than two labels"
    )
    by_series = forecast_job.reconcile_series(fitted, None, settings)
    assert by_series.ahead.empty and by_series.scores.empty
    assert by_series.insights["product_niche"] == {"skipped": fitted.skipped["product_niche"]}


def test_a_month_of_data_sums_its_categories_untested(spark: SparkSession) -> None:
    # One month: no backtest origin, so no method can be chosen; the series are summed.
    days = [dt.date(2016, 1, 1) + dt.timedelta(days=i) for i in range(31)]
    # Categories A 3 a day and B 1; niches n1 3 (2 of A, 1 of B) and n2 1.
    sales = (("A", "n1", 2.0), ("A", "n2", 1.0), ("B", "n1", 1.0))
    daily = spark.createDataFrame(
        [(d, c, n, v) for d in days for c, n, v in sales],
        "day date, product_category string, product_niche string, value double",
    )
    settings = load_config(overrides=["forecast.series_by=product_category,product_niche"]).forecast
    total = fc.forecast_revenue(fc.daily_series(pd.Series(days), pd.Series([4.0] * 31)), settings)
    fitted = forecast_job.fit_series(daily, days[0], days[-1], settings)
    by_series = forecast_job.reconcile_series(fitted, total, settings)
    grouping = by_series.insights["product_category"]
    assert grouping["method"] == "bottom_up"
    assert grouping["relative_mae"] is None and grouping["helped"] is False
    assert "no backtest window for every series: summed bottom-up, untested" in grouping["notes"]
    ahead = by_series.ahead[by_series.ahead["grouping"] == "product_category"]
    ahead = ahead.pivot(index="horizon", columns="series", values="value")
    # Each category's baseline: its daily mean times the month's days (29 February 2016).
    assert ahead.loc["1", "A"] == pytest.approx(3.0 * 29)
    assert ahead.loc["2", "A"] == pytest.approx(3.0 * 31)
    assert (ahead["total"] == ahead["A"] + ahead["B"]).all()
    niches = by_series.ahead[by_series.ahead["grouping"] == "product_niche"]
    niches = niches.pivot(index="horizon", columns="series", values="value")
    assert niches.loc["1", "n1"] == pytest.approx(3.0 * 29)
    assert (niches["total"] == niches["n1"] + niches["n2"]).all()
