"""Forecast (Q5): calendar rules, baselines by hand, models on series with a known answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from hotmart_spark.analysis import forecast as fc
from hotmart_spark.errors import UserError


def series_of(start: str, values: np.ndarray | list[float]) -> fc.DailySeries:
    days = pd.date_range(start, periods=len(values), freq="D")
    return fc.daily_series(pd.Series(days.date), pd.Series(values, dtype=float))


def months(*names: str) -> list[str]:
    return list(names)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        (dt.date(2016, 1, 1), dt.date(2016, 6, 30), months("2016-01", "2016-06")),
        # A first month the data enters late is not complete either.
        (dt.date(2016, 1, 15), dt.date(2016, 12, 31), months("2016-02", "2016-12")),
        # 2016 is a leap year: data to 28 February leaves February incomplete...
        (dt.date(2016, 1, 1), dt.date(2016, 2, 28), months("2016-01", "2016-01")),
        (dt.date(2016, 1, 1), dt.date(2016, 2, 29), months("2016-01", "2016-02")),
        # ...while in 2015 the 28th is February's last day.
        (dt.date(2015, 1, 1), dt.date(2015, 2, 28), months("2015-01", "2015-02")),
        (dt.date(2015, 12, 1), dt.date(2016, 1, 31), months("2015-12", "2016-01")),
    ],
)
def test_complete_months(first: dt.date, last: dt.date, expected: list[str]) -> None:
    found = fc.complete_months(first, last)
    assert (str(found[0]), str(found[-1])) == tuple(expected)


def test_no_complete_month_is_a_clear_error() -> None:
    assert fc.complete_months(dt.date(2016, 3, 10), dt.date(2016, 4, 5)).empty
    with pytest.raises(UserError, match="no complete calendar month"):
        series_of("2016-03-10", [1.0] * 27)


@pytest.mark.parametrize(
    ("last_complete", "expected", "days"),
    [
        ("2016-12", ["2017-01", "2017-02", "2017-03"], 31 + 28 + 31),
        ("2015-11", ["2015-12", "2016-01", "2016-02"], 31 + 31 + 29),
        ("2016-06", ["2016-07", "2016-08", "2016-09"], 31 + 31 + 30),
    ],
)
def test_horizon_months_cross_year_ends_and_leap_days(
    last_complete: str, expected: list[str], days: int
) -> None:
    ahead = fc.horizon_months(pd.Period(last_complete, "M"), 3)
    assert [str(m) for m in ahead] == expected
    assert len(fc.month_days(ahead)) == days


def test_daily_series_fills_gaps_with_zero_and_stops_at_the_last_complete_month() -> None:
    # 1 Feb 2015 to 3 Mar 2015; 10 Feb has no sale; March is incomplete.
    days = [d for d in pd.date_range("2015-02-01", "2015-03-03").date if d != dt.date(2015, 2, 10)]
    series = fc.daily_series(pd.Series(days), pd.Series([2.0] * len(days)))
    assert series.values.index[-1] == pd.Timestamp("2015-02-28")
    assert series.values[pd.Timestamp("2015-02-10")] == 0.0
    assert series.zero_days == [dt.date(2015, 2, 10)]
    assert series.unused_days == [dt.date(2015, 3, 1), dt.date(2015, 3, 2), dt.date(2015, 3, 3)]
    assert series.monthly_totals().to_dict() == {pd.Period("2015-02", "M"): 27 * 2.0}


@pytest.fixture
def four_months() -> fc.DailySeries:
    """Jan-Apr 2015: 10, 20, 30, 15 a day, except the last week of April: 1, 2, ..., 7."""
    values = [10.0] * 31 + [20.0] * 28 + [30.0] * 31 + [15.0] * 23 + [1, 2, 3, 4, 5, 6, 7]
    return series_of("2015-01-01", values)


def test_monthly_totals_by_hand(four_months: fc.DailySeries) -> None:
    # April: 23 days of 15 plus 1 + ... + 7 = 345 + 28.
    assert four_months.monthly_totals().tolist() == [310.0, 560.0, 930.0, 373.0]


AHEAD = fc.horizon_months(pd.Period("2015-04", "M"), 3)  # May, June, July 2015


def months_of(fit: fc.Fit, train: pd.Series) -> list[float]:
    monthly, _, total, _ = fc._forecast_months(fit, train, AHEAD, None)
    assert total["mean"] == pytest.approx(monthly["mean"].sum())
    return monthly["mean"].tolist()


def test_naive_last_month_is_a_daily_rate_times_the_month_length(
    four_months: fc.DailySeries,
) -> None:
    train = four_months.values
    fit = fc.naive_last_month(train, 92)
    # The last 30 days are April: 373 / 30 a day; May and July have 31 days, June 30.
    assert months_of(fit, train) == pytest.approx([373 / 30 * 31, 373, 373 / 30 * 31])


def test_naive_mean_3_months(four_months: fc.DailySeries) -> None:
    train = four_months.values
    # The last 90 days: 31 January (10), February (560), March (930), April (373).
    per_day = (10 + 560 + 930 + 373) / 90
    assert fc.naive_mean_3_months(train, 92).mean == pytest.approx([per_day] * 92)
    assert months_of(fc.naive_mean_3_months(train, 92), train)[1] == pytest.approx(per_day * 30)


def test_seasonal_naive_repeats_the_last_week(four_months: fc.DailySeries) -> None:
    train = four_months.values
    fit = fc.seasonal_naive_weekly(train, 92)
    # May: 4 weeks of 1..7 (112) + 1, 2, 3; June starts at 4: 112 + 4, 5; July starts at 6:
    # 112 + 6, 7, 1.
    assert months_of(fit, train) == pytest.approx([118.0, 121.0, 126.0])
    assert fit.mean[:8].tolist() == [1, 2, 3, 4, 5, 6, 7, 1]
    assert fit.fitted[pd.Timestamp("2015-04-30")] == 15.0


def cells(ratios: dict[str, list[float]], forecast: float = 100.0) -> pd.DataFrame:
    rows = [
        {"horizon": h, "forecast": forecast, "actual": forecast * np.exp(r)}
        for h, rs in ratios.items()
        for r in rs
    ]
    return pd.DataFrame(rows)


def test_conformal_calibration_by_hand() -> None:
    # log ratios 0.1, -0.1, 0.3, 0, 0.2: median 0.1; deviations 0, .2, .2, .1, .1, whose
    # median is 0.1; scaled: 0, 2, 2, 1, 1. Five scores: the 80% end is the
    # ceil(6 * 0.8) = 5th smallest, 2; the 95% end would be the 6th: there is none.
    calibration = fc.calibrate(cells({"1": [0.1, -0.1, 0.3, 0.0, 0.2]}), ["1", "2", "3"])
    assert calibration.centre["1"] == pytest.approx(0.1)
    assert calibration.scale["1"] == pytest.approx(0.1)
    assert calibration.quantile == {"80": pytest.approx(2.0), "95": np.inf}
    ends = calibration.interval("1", 200.0)
    assert ends["lo80"] == pytest.approx(200 * np.exp(-0.1))
    assert ends["hi80"] == pytest.approx(200 * np.exp(0.3))
    assert calibration.point("1", 200.0) == pytest.approx(200 * np.exp(0.1))
    # No 95% interval at all, rather than one from 0 to infinity.
    assert np.isnan(ends["lo95"]) and np.isnan(ends["hi95"])
    # Horizons without cells of their own borrow the longest one that has them.
    assert calibration.centre["3"] == calibration.centre["1"]


def test_uncentred_calibration_by_hand() -> None:
    # Around the forecast itself: |log ratios| 0.1, 0.1, 0.3, 0, 0.2, median 0.1; scaled
    # 1, 1, 3, 0, 2; the 80% end is the 5th smallest, 3.
    calibration = fc.calibrate(cells({"1": [0.1, -0.1, 0.3, 0.0, 0.2]}), ["1"], centred=False)
    assert calibration.centre["1"] == 0.0
    assert calibration.scale["1"] == pytest.approx(0.1)
    assert calibration.quantile["80"] == pytest.approx(3.0)
    ends = calibration.interval("1", 200.0)
    assert ends["lo80"] == pytest.approx(200 * np.exp(-0.3))
    assert ends["hi80"] == pytest.approx(200 * np.exp(0.3))


def test_intervals_are_never_below_zero() -> None:
    # A model that overshot by ten times and more: the interval's low end nears 0, never past.
    calibration = fc.calibrate(cells({"1": [-2.5, -3.0, -2.0, -2.8, -2.2] * 5}), ["1"])
    ends = calibration.interval("1", 50.0)
    assert 0 < ends["lo95"] <= ends["lo80"] < ends["hi80"] <= ends["hi95"] < 50.0
    assert calibration.interval("1", -5.0)["lo95"] == 0.0


def test_intervals_in_the_backtest_use_only_months_ended_before_their_origin() -> None:
    rows = []
    for i, origin in enumerate(pd.date_range("2016-03-01", periods=6, freq="7D")):
        last = origin + pd.Timedelta(days=29)
        rows.append(
            {
                "model": "m",
                "origin": str(origin.date()),
                "horizon": "1",
                "last_day": str((origin - pd.Timedelta(days=60)).date())
                if i < 5
                else str(last.date()),
                "forecast": 100.0,
                "actual": 100.0 * np.exp(0.1 * (i - 2)),
            }
        )
    dated = fc.sequential_intervals(pd.DataFrame(rows), ["1"])
    # Every cell but the last ended 60 days before its own origin, so each origin sees
    # the cells ended by then: all five for every origin, never the last one.
    first = dated.iloc[0]
    assert first["hi80"] == pytest.approx(dated.iloc[4]["hi80"])
    assert not np.isnan(dated.iloc[-1]["lo80"])


def test_backtest_scores_by_hand() -> None:
    errors = pd.DataFrame(
        {
            "model": ["m", "m", "m"],
            "half": ["evaluation"] * 3,
            "horizon": ["1", "2", "total"],
            "actual": [100.0, 200.0, 300.0],
            "forecast": [110.0, 150.0, 260.0],
            "lo95": [90.0, 160.0, 250.0],
            "lo80": [95.0, 170.0, np.nan],
            "hi80": [105.0, 190.0, np.nan],
            "hi95": [120.0, 210.0, 350.0],
        }
    )
    scores = fc.backtest_scores(errors).set_index("horizon")
    overall = scores.loc["all"]
    # "all" is the months, not their total: |e| = 10 and 50; percentage errors 10%, 25%.
    assert overall["n"] == 2
    assert overall["mae"] == 30.0
    assert overall["mape"] == pytest.approx(17.5)
    # 100 lies in [95, 105], 200 not in [170, 190]; both lie in their 95% intervals.
    assert overall["coverage80"] == 0.5
    assert overall["coverage95"] == 1.0
    assert scores.loc["2", "mae"] == 50.0
    # A cell without an interval is not counted as a miss.
    assert np.isnan(scores.loc["total", "coverage80"])
    assert scores.loc["total", "coverage95"] == 1.0


def test_backtest_origins_every_week_back_from_the_last_whole_backtest_month() -> None:
    half_year = pd.date_range("2016-01-01", "2016-06-30", freq="D")
    origins = fc.backtest_origins(half_year, 7, 28, 60)
    # 31 May leaves 30 days (June) after it; 2 February the last with 28 days of training
    # before a step back of 7 days would leave fewer.
    assert (str(origins[0].date()), str(origins[-1].date()), len(origins)) == (
        "2016-02-02",
        "2016-05-31",
        18,
    )
    assert {(b - a).days for a, b in itertools.pairwise(origins)} == {7}
    assert [str(o.date()) for o in fc.backtest_origins(half_year, 7, 28, 2)] == [
        "2016-05-24",
        "2016-05-31",
    ]


DAYS = pd.date_range("2016-01-01", "2016-06-30", freq="D")
FUTURE = pd.date_range("2016-07-01", "2016-09-30", freq="D")
WEEKDAY_FACTOR = np.array([1.2, 1.1, 1.0, 1.0, 0.9, 0.8, 1.0])


def check_known_answer(config, level: np.ndarray, truth_daily: np.ndarray) -> fc.ForecastResult:
    noisy = level + np.random.default_rng(7).normal(0, 20, len(level))
    result = fc.forecast_revenue(series_of("2016-01-01", noisy), config.forecast)
    truth = pd.Series(truth_daily, index=FUTURE).groupby(FUTURE.to_period("M")).sum()
    monthly = result.forecasts[result.chosen].monthly
    assert [str(m) for m in monthly.index] == ["2016-07", "2016-08", "2016-09"]
    assert (monthly["mean"] / truth - 1).abs().max() < 0.02
    # An 80% interval misses one month in five: three months are held to the 95% one.
    assert ((monthly["lo95"] <= truth) & (truth <= monthly["hi95"])).all()
    total = result.forecasts[result.chosen].total
    assert total["lo95"] <= truth.sum() <= total["hi95"]
    return result


def test_weekly_pattern_on_a_constant_level_is_forecast(config) -> None:
    result = check_known_answer(
        config, 1000 * WEEKDAY_FACTOR[DAYS.dayofweek], 1000 * WEEKDAY_FACTOR[FUTURE.dayofweek]
    )
    assert len(result.origins) == 18
    # The choice saw the first nine origins; the error is reported on the last nine.
    assert str(result.split) == "2016-04-05"
    halves = result.errors.groupby("half")["origin"].agg(["min", "max"])
    assert halves.loc["selection", "max"] < halves.loc["evaluation", "min"] == "2016-04-05"


def test_linear_trend_is_extrapolated(config) -> None:
    steps = np.arange(len(DAYS) + len(FUTURE))
    trend = 1000 + 10 * steps
    result = check_known_answer(config, trend[: len(DAYS)], trend[len(DAYS) :])
    assert result.chosen in fc.STATISTICAL
    gains = fc.improvement_over_baselines(result)
    assert min(gains.values()) > 0.5


def test_two_years_bring_a_yearly_cycle(config) -> None:
    days = pd.date_range("2014-01-01", "2015-12-31", freq="D")
    yearly = 1 + 0.5 * np.sin(2 * np.pi * days.dayofyear / 365.25)
    values = 1000 * yearly * WEEKDAY_FACTOR[days.dayofweek]
    values += np.random.default_rng(3).normal(0, 20, len(days))
    settings = dataclasses.replace(config.forecast, origin_step_days=28, max_origins=6)
    result = fc.forecast_revenue(series_of("2014-01-01", values), settings)
    assert result.yearly
    assert "seasonal_naive_yearly" in result.forecasts
    assert "yearly cycle" in result.forecasts["unobserved_components"].spec
    # On half a year the report says the cycle cannot be seen (whatever the origins).
    few_origins = dataclasses.replace(config.forecast, max_origins=2)
    short = fc.forecast_revenue(series_of("2016-01-01", values[:182]), few_origins)
    assert not short.yearly
    assert "seasonal_naive_yearly" not in short.forecasts


def test_a_series_too_short_for_seasonal_models_falls_back_to_baselines(
    spark: SparkSession, config
) -> None:
    settings = dataclasses.replace(config.forecast, min_seasonal_days=56)
    # 10 February to 31 March 2015: 50 days, one complete month (March).
    result = fc.forecast_revenue(series_of("2015-02-10", [5.0] * 50), settings)
    assert set(result.forecasts) == set(fc.BASELINES)
    assert result.chosen == "naive_last_month"
    assert any("baselines only" in note for note in result.notes)
    assert any("untested" in note for note in result.notes)
    skipped = result.models.set_index("model")["status"]
    assert skipped["sarimax_level"] == "skipped: series too short"
    # 5 a day over April's 30 days, May's 31 and June's 30.
    assert result.forecasts["naive_last_month"].monthly["mean"].tolist() == [150.0, 155.0, 150.0]
    # The chart table keeps numeric columns numeric when the chosen model has no daily fit.
    units = pd.Series(1, index=result.series.values.index)
    daily = fc.daily_table(result, units)
    assert (str(daily["fitted"].dtype), str(daily["units"].dtype)) == ("float64", "Int64")
    assert daily["fitted"].isna().all()
    ahead = daily["forecast"].dropna()
    assert len(ahead) == 30 + 31 + 30
    assert ahead.eq(5.0).all()
    assert result.models.set_index("model")["aic"].isna().all()
    # Nothing to backtest: no interval, and the tables are empty and still typed for Spark.
    assert np.isnan(result.forecasts["naive_last_month"].total["lo95"])
    backtest = result.backtest.assign(chosen=False)
    assert spark.createDataFrame(backtest, fc.BACKTEST_SCHEMA).count() == 0
    assert spark.createDataFrame(result.errors, fc.ERRORS_SCHEMA).count() == 0


def test_a_model_that_cannot_fit_is_left_out_with_a_note(config) -> None:
    values = 1000 * WEEKDAY_FACTOR[DAYS.dayofweek]
    values[40] = 0.0  # a day without sales: multiplicative seasonality cannot take it
    # Every one of the latest four origins trains on that day.
    few_origins = dataclasses.replace(config.forecast, max_origins=4)
    result = fc.forecast_revenue(series_of("2016-01-01", values), few_origins)
    assert "ets_multiplicative" not in result.forecasts
    assert "ets_multiplicative" not in set(result.errors["model"])
    status = result.models.set_index("model")["status"]["ets_multiplicative"]
    assert status.startswith("failed: multiplicative seasonality")


def test_an_optimiser_stopping_short_is_noted_when_its_warning_is_lost(monkeypatch) -> None:
    """Another stage's thread leaving its own catch_warnings block mid-fit restores the
    filters it saved before forecast's block began: the fit's ConvergenceWarning then never
    reaches forecast. The count must come from the fit itself."""
    monkeypatch.setattr(fc, "SARIMAX_MAXITER", 1)
    noisy = 1000 * WEEKDAY_FACTOR[DAYS.dayofweek] + np.random.default_rng(7).normal(
        0, 50, len(DAYS)
    )
    train = series_of("2016-01-01", noisy).values
    other_stage = warnings.catch_warnings()
    other_stage.__enter__()
    sarimax = fc.STATISTICAL["sarimax_level"]

    def sarimax_beside_another_stage(*args) -> fc.Fit:
        other_stage.__exit__(None, None, None)
        return sarimax(*args)

    warned: dict[str, int] = {}
    fit = fc._fit("sarimax_level", sarimax_beside_another_stage, train, 92, warned)
    assert not fit.converged
    assert warned == {"sarimax_level": 1}
    # With 200 iterations the fit converges on this series: nothing to note.
    monkeypatch.setattr(fc, "SARIMAX_MAXITER", 200)
    warned.clear()
    assert fc._fit("sarimax_level", sarimax, train, 92, warned).converged
    assert warned == {}
