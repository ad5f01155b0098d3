"""Forecast (Q5): calendar rules, baselines by hand, models on series with a known answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
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


def test_naive_last_month(four_months: fc.DailySeries) -> None:
    forecast = fc.naive_last_month(four_months.values, AHEAD, np.random.default_rng(0), 1000)
    assert forecast.monthly["mean"].tolist() == [373.0, 373.0, 373.0]
    # Month-to-month changes 250, 370, -557: sigma = sqrt((250² + 370² + 557²) / 3).
    sigma = np.sqrt((62500 + 136900 + 310249) / 3)
    assert sigma == pytest.approx(412.169, abs=1e-3)
    half_width_80 = forecast.monthly["hi80"] - forecast.monthly["mean"]
    # sigma comes from three changes: Student's t with 3 degrees of freedom, 90% point 1.6377
    # (the table value), not the normal's 1.2816.
    expected = 1.6377 * sigma * np.sqrt([1, 2, 3])
    assert half_width_80.to_numpy() == pytest.approx(expected, rel=1e-4)


def test_naive_mean_3_months(four_months: fc.DailySeries) -> None:
    forecast = fc.naive_mean_3_months(four_months.values, AHEAD, np.random.default_rng(0), 1000)
    # (560 + 930 + 373) / 3
    assert forecast.monthly["mean"].tolist() == pytest.approx([621.0] * 3)
    # Sample sd of 560, 930, 373 (deviations -61, 309, -248): sqrt(162746 / 2); times sqrt(4/3).
    sd = np.sqrt((61**2 + 309**2 + 248**2) / 2) * np.sqrt(4 / 3)
    lo95 = forecast.monthly["lo95"].to_numpy()
    # s from three months: Student's t with 2 degrees of freedom, 2.5% point -4.3027 (the table
    # value), not the normal's -1.96.
    assert lo95 == pytest.approx(621.0 - 4.3027 * sd, rel=1e-4)


def test_seasonal_naive_repeats_the_last_week(four_months: fc.DailySeries) -> None:
    forecast = fc.seasonal_naive_weekly(four_months.values, AHEAD, np.random.default_rng(0), 1000)
    # May: 4 weeks of 1..7 (112) + 1, 2, 3; June starts at 4: 112 + 4, 5; July starts at 6:
    # 112 + 6, 7, 1.
    assert forecast.monthly["mean"].tolist() == pytest.approx([118.0, 121.0, 126.0])
    assert forecast.daily["mean"].iloc[:8].tolist() == [1, 2, 3, 4, 5, 6, 7, 1]
    assert forecast.fitted[pd.Timestamp("2015-04-30")] == 15.0


def test_monthly_intervals_come_from_summed_paths_not_summed_interval_ends() -> None:
    # Two days of one month whose path values cancel: each day is uncertain, the month is not.
    draws = np.random.default_rng(1).normal(size=1000)
    paths = np.vstack([10 + draws, 10 - draws])
    days = pd.date_range("2016-02-28", periods=2, freq="D")
    monthly, daily = fc.path_summaries(
        np.array([10.0, 10.0]), paths, days, pd.PeriodIndex(["2016-02"], freq="M")
    )
    assert (daily["hi95"] - daily["lo95"]).min() > 3.0
    assert monthly.loc[pd.Period("2016-02", "M"), "lo95"] == pytest.approx(20.0)
    assert monthly.loc[pd.Period("2016-02", "M"), "hi95"] == pytest.approx(20.0)


def test_backtest_scores_by_hand() -> None:
    errors = pd.DataFrame(
        {
            "model": ["m", "m"],
            "horizon": [1, 2],
            "actual": [100.0, 200.0],
            "forecast": [110.0, 150.0],
            "lo95": [90.0, 160.0],
            "lo80": [95.0, 170.0],
            "hi80": [105.0, 190.0],
            "hi95": [120.0, 210.0],
        }
    )
    scores = fc.backtest_scores(errors, scale=20.0).set_index("horizon")
    overall = scores.loc["all"]
    # |e| = 10 and 50; percentage errors 10% and 25%.
    assert overall["mae"] == 30.0
    assert overall["mape"] == pytest.approx(17.5)
    assert overall["mase"] == pytest.approx(1.5)
    # 100 lies in [95, 105], 200 not in [170, 190]; both lie in their 95% intervals.
    assert overall["coverage80"] == 0.5
    assert overall["coverage95"] == 1.0
    assert scores.loc["2", "mae"] == 50.0


def test_backtest_origins() -> None:
    six = pd.period_range("2016-01", "2016-06", freq="M")
    assert [str(o) for o in fc.backtest_origins(six, 3, 12)] == ["2016-01", "2016-02", "2016-03"]
    assert [str(o) for o in fc.backtest_origins(six, 3, 2)] == ["2016-02", "2016-03"]
    # Too short for a whole horizon: every month with at least one month after it.
    three = pd.period_range("2016-01", "2016-03", freq="M")
    assert [str(o) for o in fc.backtest_origins(three, 3, 12)] == ["2016-01", "2016-02"]


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
    assert ((monthly["lo80"] <= truth) & (truth <= monthly["hi80"])).all()
    return result


def test_weekly_pattern_on_a_constant_level_is_forecast(config) -> None:
    result = check_known_answer(
        config, 1000 * WEEKDAY_FACTOR[DAYS.dayofweek], 1000 * WEEKDAY_FACTOR[FUTURE.dayofweek]
    )
    # A month-level naive cannot follow the weekday mix of the coming months as well.
    assert result.chosen not in ("naive_last_month", "naive_mean_3_months")
    assert [str(o) for o in result.errors["origin"].unique()] == ["2016-01", "2016-02", "2016-03"]


def test_linear_trend_is_extrapolated(config) -> None:
    steps = np.arange(len(DAYS) + len(FUTURE))
    trend = 1000 + 10 * steps
    result = check_known_answer(config, trend[: len(DAYS)], trend[len(DAYS) :])
    assert result.chosen in fc.STATISTICAL
    gains = fc.improvement_over_baselines(result)
    assert min(gains.values()) > 0.5


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
    assert skipped["sarimax_weekly"] == "skipped: series too short"
    assert result.forecasts["naive_last_month"].monthly["mean"].tolist() == [155.0] * 3
    # The chart table keeps numeric columns numeric when the chosen model has no daily fit.
    units = pd.Series(1, index=result.series.values.index)
    daily = fc.daily_table(result, units)
    assert (str(daily["fitted"].dtype), str(daily["units"].dtype)) == ("float64", "Int64")
    assert daily["fitted"].isna().all()
    # 155 a month spread over April's 30 days, May's 31 and June's 30.
    ahead = daily["forecast"].dropna()
    assert len(ahead) == 30 + 31 + 30
    assert ahead.iloc[0] == pytest.approx(155 / 30)
    assert ahead.iloc[30] == pytest.approx(5.0)
    assert ahead.iloc[-1] == pytest.approx(155 / 30)
    assert result.models.set_index("model")["aic"].isna().all()
    # Nothing to backtest: the tables are empty and still typed for Spark.
    backtest = result.backtest.assign(chosen=False)
    assert spark.createDataFrame(backtest, fc.BACKTEST_SCHEMA).count() == 0
    assert spark.createDataFrame(result.errors, fc.ERRORS_SCHEMA).count() == 0


def test_a_model_that_cannot_fit_is_left_out_with_a_note(config) -> None:
    values = 1000 * WEEKDAY_FACTOR[DAYS.dayofweek]
    values[40] = 0.0  # a day without sales: multiplicative seasonality cannot take it
    result = fc.forecast_revenue(series_of("2016-01-01", values), config.forecast)
    assert "ets_multiplicative" not in result.forecasts
    assert "ets_multiplicative" not in set(result.errors["model"])
    status = result.models.set_index("model")["status"]["ets_multiplicative"]
    assert status.startswith("failed: multiplicative seasonality")


def test_an_optimiser_stopping_short_is_noted_when_its_warning_is_lost(monkeypatch, config) -> None:
    """Another stage's thread leaving its own catch_warnings block mid-fit restores the
    filters it saved before forecast's block began: the fit's ConvergenceWarning then never
    reaches forecast. The count must come from the fit itself."""
    monkeypatch.setattr(fc, "SARIMAX_MAXITER", 1)
    noisy = 1000 * WEEKDAY_FACTOR[DAYS.dayofweek] + np.random.default_rng(7).normal(
        0, 50, len(DAYS)
    )
    train = series_of("2016-01-01", noisy).values
    ahead = fc.horizon_months(pd.Period("2016-06", "M"), 3)
    other_stage = warnings.catch_warnings()
    other_stage.__enter__()

    def sarimax_beside_another_stage(*args) -> fc.ModelForecast:
        other_stage.__exit__(None, None, None)
        return fc.sarimax_weekly(*args)

    warned: dict[str, int] = {}
    settings = dataclasses.replace(config.forecast, simulations=10)
    forecast = fc._fit(
        "sarimax_weekly", sarimax_beside_another_stage, train, ahead, settings, warned
    )
    assert not forecast.converged
    assert warned == {"sarimax_weekly": 1}
    # With 200 iterations all four fits of the grid converge on this series: nothing to note.
    monkeypatch.setattr(fc, "SARIMAX_MAXITER", 200)
    warned.clear()
    assert fc._fit("sarimax_weekly", fc.sarimax_weekly, train, ahead, settings, warned).converged
    assert warned == {}
