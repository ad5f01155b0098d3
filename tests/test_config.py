from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from hotmart_spark.cli import EXIT_USER_ERROR, run_job
from hotmart_spark.config import DEFAULT_CONFIG, load_config
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
        ("generator.defects=0.5", "config key 'generator.defects' must be between 0 and 0.05"),
        ("input.from_month=2016-13", "config key 'input.from_month' must be a month as YYYY-MM"),
        ("jdbc.num_partitions=0", "config key 'jdbc.num_partitions' must be at least 1"),
        ("drivers.model=xgboost", "config key 'drivers.model' must be one of gbt, random_forest"),
        ("drivers.holdout_share=1.0", "config key 'drivers.holdout_share' must be between 0 and 1"),
        ("forecast.simulations=10", "config key 'forecast.simulations' must be at least 100"),
        (
            "forecast.min_seasonal_days=7",
            "config key 'forecast.min_seasonal_days' must be at least 14",
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


def test_missing_key_is_named(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace('encoding = "UTF-8"\n', "", 1)
    partial = tmp_path / "partial.toml"
    partial.write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=r"config key 'input\.encoding' is missing"):
        load_config(partial)


def test_missing_and_invalid_config_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[paths\n", encoding="utf-8")
    with pytest.raises(UserError, match="is not valid TOML"):
        load_config(broken)


def test_job_with_bad_config_ends_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def never_called(spark, config):  # pragma: no cover - the config fails first
        raise AssertionError("main must not run")

    code = run_job("validate", never_called, argv=["--set", "period.end=someday"])
    assert code == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: config key 'period.end' must be date, got 'someday'"]


def test_a_month_range_must_run_forwards() -> None:
    with pytest.raises(UserError, match=r"'input\.from_month' is after input\.to_month"):
        load_config(overrides=["input.from_month=2016-05", "input.to_month=2016-02"])
    assert load_config(overrides=["input.from_month=2016-02", "input.to_month=2016-02"])
