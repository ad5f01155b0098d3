from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from hotmart_spark import config as config_module
from hotmart_spark.cli import EXIT_USER_ERROR, run_job
from hotmart_spark.config import DEFAULTS, load_config, resolve_config
from hotmart_spark.errors import UserError


def test_default_config_is_typed() -> None:
    config = load_config()
    assert config.period.start == dt.date(2016, 1, 1)
    assert config.period.end == dt.date(2016, 6, 30)
    assert config.generator.rows == 1_599_828
    assert config.quality.actions["affiliate_sale_without_commission"] == "warn"
    assert config.value.std == 0.0


def test_overrides_take_the_field_type() -> None:
    config = load_config(
        overrides=[
            "generator.rows=1000",
            "value.std=12.5",
            "generator.pandas_index=true",
            "period.end=2016-03-31",
            "quality.actions.direct_sale_with_commission=warn",
            "paths.output=/tmp/x",
        ]
    )
    assert config.generator.rows == 1000
    assert config.value.std == 12.5
    assert config.generator.pandas_index is True
    assert config.period.end == dt.date(2016, 3, 31)
    assert config.quality.actions["direct_sale_with_commission"] == "warn"
    assert config.paths.output == "/tmp/x"
    # A list is comma-separated; nothing after the = is the empty list.
    assert load_config(overrides=["forecast.series_by="]).forecast.series_by == ()
    assert load_config(
        overrides=["forecast.series_by=product_category, product_niche"]
    ).forecast.series_by == ("product_category", "product_niche")


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(AttributeError):
        config.period.start = dt.date(2017, 1, 1)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("generator.nope=1", "unknown config key 'generator.nope'"),
        ("nope.key=1", "unknown config key 'nope'"),
        ("generator.rows=many", "config key 'generator.rows' must be int, got 'many'"),
        ("generator.pandas_index=yes", "config key 'generator.pandas_index' must be bool"),
        ("period.start=2016-13-01", "config key 'period.start' must be date"),
        ("period.start=2016-07-01", "config key 'period.start' (2016-07-01) is after period.end"),
        ("input.format=xlsx", "config key 'input.format' must be one of auto, csv, parquet"),
        ("input.encoding=klingon", "config key 'input.encoding' names an unknown encoding"),
        (
            "value.platform_fee_rate=1.5",
            "config key 'value.platform_fee_rate' must be between 0 and 1",
        ),
        ("quality.actions.malformed=ignore", "config key 'quality.actions.malformed' must be"),
        ("quality.actions.made_up=warn", "config key 'quality.actions.made_up' is not a rule"),
        (
            "quality.max_quarantine_share=1.5",
            "config key 'quality.max_quarantine_share' must be between 0 and 1",
        ),
        ("generator.defects=0.5", "config key 'generator.defects' must be between 0 and 0.05"),
        ("input.from_month=2016-13", "config key 'input.from_month' must be a month as YYYY-MM"),
        ("jdbc.num_partitions=0", "config key 'jdbc.num_partitions' must be at least 1"),
        ("drivers.model=xgboost", "config key 'drivers.model' must be one of gbt, random_forest"),
        ("drivers.holdout_share=1.0", "config key 'drivers.holdout_share' must be between 0 and 1"),
        (
            "forecast.origin_step_days=0",
            "config key 'forecast.origin_step_days' must be at least 1",
        ),
        (
            "forecast.min_seasonal_days=7",
            "config key 'forecast.min_seasonal_days' must be at least 14",
        ),
        (
            "forecast.series_by=product_category,buyer_id",
            "config key 'forecast.series_by' names buyer_id; it takes product_category, "
            "product_niche",
        ),
        ("rows=5", "--set expects section.key=value, got 'rows=5'"),
        ("generator.rows", "--set expects section.key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(UserError) as excinfo:
        load_config(overrides=[override])
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_a_config_file_sets_only_the_keys_it_changes(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(
        '[period]\nend = 2016-03-31\n\n[quality.actions]\ndirect_sale_with_commission = "warn"\n',
        encoding="utf-8",
    )
    config = load_config(mine)
    assert config.period.end == dt.date(2016, 3, 31)
    assert config.period.start == dt.date(2016, 1, 1)
    assert config.quality.actions["direct_sale_with_commission"] == "warn"
    # The section's other keys keep their defaults.
    assert config.quality.actions["affiliate_sale_without_commission"] == "warn"
    assert config.quality.actions["malformed"] == "quarantine"
    assert config.generator.rows == 1_599_828
    assert load_config(mine, ["period.end=2016-04-30"]).period.end == dt.date(2016, 4, 30)


def test_the_layers_in_order_of_precedence(tmp_path: Path) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text("[period]\nend = 2016-03-31\nstart = 2016-02-01\n", encoding="utf-8")
    environ = {
        "HOTMART_SPARK__PERIOD__END": "2016-04-30",
        "hotmart_spark__quality__actions__malformed": "warn",
        "HOTMART_SPARK__RFM__FREQUENCY_TIERS": "2,4,8,16",
        "HOTMART_SPARK_PROFILE": "cluster",  # another variable of the project: not a key
        "PATH": "/usr/bin",
    }
    config = load_config(mine, ["generator.rows=500"], environ)
    # The file over the defaults, the environment over the file, the command line last.
    assert config.period.start == dt.date(2016, 2, 1)
    assert config.period.end == dt.date(2016, 4, 30)
    assert config.quality.actions["malformed"] == "warn"
    assert config.rfm.frequency_tiers == (2, 4, 8, 16)
    assert config.generator.rows == 500
    assert load_config(mine, ["period.end=2016-05-31"], environ).period.end == dt.date(2016, 5, 31)
    _, sources = resolve_config(mine, ["generator.rows=500"], environ)
    assert sources["period.start"] == f"file {mine}"
    assert sources["period.end"] == "environment HOTMART_SPARK__PERIOD__END"
    assert sources["generator.rows"] == "command line"
    assert sources["value.currency"] == "default"
    with pytest.raises(UserError, match=r"unknown config key 'period\.finish'"):
        load_config(environ={"HOTMART_SPARK__PERIOD__FINISH": "2016-01-01"})


def test_print_config_reads_back_and_names_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTMART_SPARK__VALUE__CURRENCY", "USD")
    with pytest.raises(SystemExit) as exited:
        run_job("validate", argv=["--print-config", "--set", "input.separator=\\t",
                                  "--output", str(tmp_path / "out")])  # fmt: skip
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert 'currency = "USD"  # environment HOTMART_SPARK__VALUE__CURRENCY' in printed
    assert f'output = "{tmp_path / "out"}"  # command line' in printed
    assert 'start = "2016-01-01"  # default' in printed
    assert '"Can\'t lose them" = "[1-2]5"  # default' in printed
    # What it prints is a config file that gives the same config.
    again = tmp_path / "again.toml"
    again.write_text(printed, encoding="utf-8")
    assert load_config(again) == load_config(
        None, ["input.separator=\\t", f"paths.output={tmp_path / 'out'}"],
        {"HOTMART_SPARK__VALUE__CURRENCY": "USD"},
    )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_key_missing_from_the_defaults_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DEFAULTS.read_text(encoding="utf-8").replace('encoding = "UTF-8"\n', "", 1)
    partial = tmp_path / "partial.toml"
    partial.write_text(text, encoding="utf-8")
    monkeypatch.setattr(config_module, "DEFAULTS", partial)
    with pytest.raises(UserError, match=r"config key 'input\.encoding' is missing"):
        load_config()


def test_missing_and_invalid_config_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[paths\n", encoding="utf-8")
    with pytest.raises(UserError, match="is not valid TOML"):
        load_config(broken)


def test_job_with_bad_config_ends_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_job("validate", argv=["--set", "period.end=someday"])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config key 'period.end' must be date, got 'someday'"]


def test_a_month_range_must_run_forwards() -> None:
    with pytest.raises(UserError, match=r"'input\.from_month' is after input\.to_month"):
        load_config(overrides=["input.from_month=2016-05", "input.to_month=2016-02"])
    assert load_config(overrides=["input.from_month=2016-02", "input.to_month=2016-02"])


@pytest.mark.parametrize(
    ("months", "message"),
    [
        (
            ["input.from_month=2026-11", "input.to_month=2026-11"],
            "'input.from_month' (2026-11) is after the period (2016-01-01 to 2016-06-30)",
        ),
        (["input.to_month=2015-12"], "'input.to_month' (2015-12) is before the period"),
        (
            ["input.from_month=2016-03", "period.start=auto"],
            "'period.start' 'auto' takes the whole input's days",
        ),
    ],
)
def test_a_month_range_outside_the_period_ends_in_one_line(months: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        load_config(overrides=months)


def test_the_period_can_be_the_datas_own() -> None:
    period = load_config(overrides=["period.start=auto", "period.end=auto"]).period
    assert (period.start, period.end) == (None, None)
    assert load_config(overrides=["period.end=auto"]).period.start == dt.date(2016, 1, 1)


def test_an_output_that_is_a_file_ends_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "report.txt"
    taken.write_text("not a folder", encoding="utf-8")
    assert run_job("validate", argv=["--output", str(taken)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --output {taken} is a file: name a folder for the run's outputs"]
