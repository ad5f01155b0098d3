"""Inputs nobody here generated: other encodings, day-only stamps, too little data, a month
range whose rows are all broken, a gate for schedulers (issue 28's table, one test a case)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import pipeline, runs
from hotmart_spark import schema as s
from hotmart_spark.config import load_config
from hotmart_spark.errors import UserError
from hotmart_spark.report import story
from hotmart_spark.stages import generate as generate_job
from hotmart_spark.stages import stage as stages
from hotmart_spark.stages import validate as validate_job
from tests.conftest import HEADER, PLUMBING, newest_run, run_stage

LINE = (
    "{id},10,7,7,{buyer},{day} 10:00:{second:02d},2015-06-01 00:00:00,Podcast,{niche},"
    "{value},0.0,Desktop,Origin 00ab,0,1"
)


def lines(ids: range, day: str = "2016-03-10", niche: str = "Physics") -> list[str]:
    return [
        LINE.format(id=i, buyer=100 + i, day=day, second=i % 60, niche=niche, value=i / 100)
        for i in ids
    ]


def csv(path: Path, rows: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join([HEADER, *rows, ""]).encode(encoding))
    return path


def insights(out: Path) -> dict:
    return json.loads((out / "report" / "insights.json").read_text())


def test_a_file_in_another_encoding_stops_with_one_line(
    spark: SparkSession, tmp_path: Path
) -> None:
    source = csv(tmp_path / "latin.csv", lines(range(1, 4), niche="Educação"), "iso-8859-1")
    out = tmp_path / "out"
    overrides = [f"paths.input={source}", f"paths.output={out}"]
    with pytest.raises(UserError) as wrong:
        run_stage(spark, validate_job, load_config(overrides=overrides))
    assert str(wrong.value) == (
        f"{source}: 3 rows hold bytes that are not UTF-8; set input.encoding to the "
        "file's encoding (ISO-8859-1 for the known exports)"
    )
    assert not (out / "clean").exists()
    run_stage(spark, validate_job, load_config(overrides=[*overrides, "input.encoding=ISO-8859-1"]))
    niches = {r[s.PRODUCT_NICHE] for r in stages.read(spark, str(out), "clean").collect()}
    assert niches == {"Educação"}


def test_period_auto_takes_the_datas_days(spark: SparkSession, tmp_path: Path) -> None:
    source = csv(
        tmp_path / "in.csv", lines(range(1, 3), "2019-02-03") + lines(range(3, 5), "2019-05-06")
    )
    out = tmp_path / "out"
    config = load_config(
        overrides=[
            f"paths.input={source}",
            f"paths.output={out}",
            "period.start=auto",
            "period.end=auto",
        ]
    )
    record = run_stage(spark, validate_job, config)
    assert (record["period_start"], record["period_end"]) == ("2019-02-03", "2019-05-06")
    assert record["rows_quarantined"] == 0
    later = load_config(
        overrides=[f"paths.input={out}", f"paths.output={out}", "period.start=auto"]
    )
    assert stages.period(later) == (dt.date(2019, 2, 3), dt.date(2016, 6, 30))


def test_a_run_above_the_quarantine_share_publishes_then_fails_its_gate(
    spark: SparkSession, tmp_path: Path
) -> None:
    # 20 rows, 2 of them outside the period: 10% quarantined, above the default 5%.
    rows = lines(range(1, 19)) + lines(range(19, 21), "2017-01-01")
    source, out = csv(tmp_path / "in.csv", rows), tmp_path / "out"
    config = load_config(overrides=[f"paths.input={source}", f"paths.output={out}"])
    with runs.output_run(str(out), "validate", "app-1") as run:
        validate_job.run(spark, config)
    assert run.gate_failures == [
        "10.0% of the rows were quarantined (2 of 20), more than "
        f"quality.max_quarantine_share = 5.0%: see quarantine/ under {out}"
    ]
    assert stages.read(spark, str(out), "quarantine").count() == 2
    assert newest_run(out, "validate")["quality_gate"] == run.gate_failures
    loose = load_config(
        overrides=[
            f"paths.input={source}",
            f"paths.output={out}",
            "quality.max_quarantine_share=0.1",
        ]
    )
    with runs.output_run(str(out), "validate", "app-2") as run:
        validate_job.run(spark, loose)
    assert run.gate_failures == []


def test_with_no_clean_row_the_analysis_is_skipped_and_validation_published(
    spark: SparkSession, tmp_path: Path
) -> None:
    source, out = csv(tmp_path / "in.csv", lines(range(1, 21), "2017-01-10")), tmp_path / "out"
    config = load_config(
        overrides=[f"paths.input={source}", f"paths.output={out}", "quality.max_quarantine_share=1"]
    )
    record = run_stage(spark, pipeline, config)
    assert record["skipped"] == {
        "aggregates": "the clean table has no rows",
        "segments": "the clean table has no rows",
        "drivers": "the clean table has no rows",
        "forecast": "the aggregates stage was skipped (the clean table has no rows)",
    }
    assert stages.read(spark, str(out), "clean").isEmpty()
    assert stages.read(spark, str(out), "quarantine").count() == 20
    found = insights(out)
    assert found["run"]["rows_quarantined"] == 20
    assert found["producers"] == {"not_answered": "the clean table has no rows"}
    # The report says what it could not answer, and why, and shows the data's quality.
    page = (out / "report" / "report.html").read_text()
    assert page.count("Not answered: the clean table has no rows.") == 2 * 4
    assert page.count("Not answered: the aggregates stage was skipped") == 2
    assert "<img" not in page
    assert "outside_period" in page
    assert newest_run(out, "pipeline")["status"] == "succeeded"


def test_a_month_whose_rows_are_all_quarantined_replaces_that_month(
    spark: SparkSession, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    full = csv(tmp_path / "full.csv", lines(range(1, 11), "2016-02-10") + lines(range(11, 21)))
    run_stage(
        spark, validate_job, load_config(overrides=[f"paths.input={full}", f"paths.output={out}"])
    )
    # March again, every row now broken (a commission on a direct sale).
    broken = [line.replace(",0.0,Desktop", ",50.0,Desktop") for line in lines(range(11, 21))]
    march = csv(tmp_path / "march.csv", broken)
    overrides = [f"paths.input={march}", f"paths.output={out}", "input.from_month=2016-03"]
    run_stage(spark, validate_job, load_config(overrides=[*overrides, "input.to_month=2016-03"]))
    clean = stages.read(spark, str(out), "clean")
    assert sorted(r[0] for r in clean.select(s.PURCHASE_MONTH).distinct().collect()) == ["2016-02"]
    assert stages.read(spark, str(out), "quarantine").count() == 10
    # The report's data paragraph describes both months of the tables, and the run beside.
    run = insights(out)["run"]
    assert (run["rows_in"], run["rows_clean"], run["rows_quarantined"]) == (20, 10, 10)
    assert run["z_min"] == pytest.approx(0.01)
    assert (run["last_run"]["rows_in"], run["last_run"]["from"]) == (10, "2016-03")


def test_a_day_stamped_log_runs_the_pipeline_without_bursts(
    spark: SparkSession, tmp_path: Path
) -> None:
    raw, stamped, out = tmp_path / "raw", tmp_path / "stamped", tmp_path / "out"
    generate_job.run(
        spark,
        load_config(
            overrides=[f"paths.output={raw}", "generator.rows=4000", "generator.defects=0"]
        ),
    )
    rows = spark.read.option("header", True).csv(str(raw))
    by_day = F.date_format(F.to_date(s.PURCHASE_DATE), "yyyy-MM-dd 00:00:00")
    rows.withColumn(s.PURCHASE_DATE, by_day).coalesce(1).write.option("header", True).csv(
        str(stamped)
    )
    config = load_config(overrides=[f"paths.input={stamped}", f"paths.output={out}", *PLUMBING])
    run_stage(spark, pipeline, config)
    run = insights(out)["run"]
    assert run["day_only_timestamps"] is True
    assert "placeholder_burst" not in run["quarantine_by_rule"]
    assert run["rows_quarantined"] == 0
    report = (out / "report" / "report.html").read_text()
    assert "The timestamps carry the day only" in report
    assert 'alt="weekday_hour chart"' not in report
    assert not (out / "report" / "weekday_hour.png").exists()


def test_a_month_range_with_no_rows_empties_that_month(spark: SparkSession, tmp_path: Path) -> None:
    out = tmp_path / "out"
    full = csv(tmp_path / "full.csv", lines(range(1, 11), "2016-02-10") + lines(range(11, 21)))
    run_stage(
        spark, validate_job, load_config(overrides=[f"paths.input={full}", f"paths.output={out}"])
    )
    # The corrected export has no March purchase at all.
    february = csv(tmp_path / "february.csv", lines(range(1, 11), "2016-02-10"))
    months = ["input.from_month=2016-03", "input.to_month=2016-03"]
    record = run_stage(
        spark,
        validate_job,
        load_config(overrides=[f"paths.input={february}", f"paths.output={out}", *months]),
    )
    assert (record["rows_in"], record["rows_clean"]) == (0, 0)
    clean = stages.read(spark, str(out), "clean")
    assert [r[0] for r in clean.select(s.PURCHASE_MONTH).distinct().collect()] == ["2016-02"]
    assert insights(out)["run"]["rows_in"] == 10


def test_a_tsv_row_of_only_tabs_is_counted_and_quarantined(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [line.replace(",", "\t") for line in lines(range(1, 4))]
    source = tmp_path / "sales.tsv"
    source.write_text("\n".join([HEADER.replace(",", "\t"), "\t" * 14, *rows, ""]))
    out = tmp_path / "out"
    record = run_stage(
        spark, validate_job, load_config(overrides=[f"paths.input={source}", f"paths.output={out}"])
    )
    assert (record["rows_in"], record["rows_clean"], record["rows_quarantined"]) == (4, 3, 1)
    # A row of nulls also has no commission.
    assert record["quarantine_by_rule"] == {"required_null": 1, "commission_invalid": 1}


def test_the_data_paragraph_of_a_month_range_names_the_range() -> None:
    run = {
        "rows_in": 99397,
        "rows_clean": 98700,
        "rows_quarantined": 697,
        "period_start": "2016-01-01",
        "period_end": "2016-06-30",
        "value_unit": "relative value units",
        "z_min": -0.56,
        "last_run": {"from": "2016-03", "to": "2016-03", "rows_in": 22290, "rows_quarantined": 150},
    }
    lines_ = story.quality(run)
    assert lines_[0] == (
        "99,397 rows read, 98,700 clean and 697 quarantined (0.70%), over 2016-01-01 to 2016-06-30."
    )
    assert lines_[1] == (
        "The last validation replaced only 2016-03 (and the undated rows): 22,290 rows read, "
        "150 quarantined; the figures above count every month of the tables."
    )
