"""Revenue forecast (Q5): naive baselines and statsmodels models on the daily series, in months.

Everything here works on the small daily series (one row per day) in pandas; the job collects it
from marts/daily_revenue. Daily forecasts are summed to calendar months path by path, so the
monthly intervals are quantiles of simulated monthly totals, not sums of daily interval ends.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.statespace.structural import UnobservedComponents

from hotmart_spark import warning_filters
from hotmart_spark.config import ForecastConfig
from hotmart_spark.errors import NotEnoughData, UserError

WEEK = 7
# Spark types of the backtest tables, which are empty when there is no origin to backtest from.
ERRORS_SCHEMA = (
    "model string, origin string, month string, horizon long, actual double, "
    "forecast double, lo95 double, lo80 double, hi80 double, hi95 double"
)
BACKTEST_SCHEMA = (
    "model string, horizon string, n long, mape double, mae double, mase double, "
    "coverage80 double, coverage95 double, chosen boolean"
)
# What a model raises on data it cannot take (non-positive days, singular matrices); such a model
# is left out with a note instead of failing the run.
FIT_ERRORS = (ValueError, np.linalg.LinAlgError)
# Interval ends as quantiles of the simulated totals: 80% and 95% central intervals.
QUANTILES = {"lo95": 0.025, "lo80": 0.10, "hi80": 0.90, "hi95": 0.975}
INTERVAL_COLUMNS = list(QUANTILES)
# (order, seasonal order, trend): the small grid SARIMAX orders are chosen from by AIC.
# lbfgs iterations per SARIMAX fit: the default 50 often stops short of convergence on daily data.
SARIMAX_MAXITER = 200
SARIMAX_GRID = [
    ((1, 0, 0), (1, 0, 1, WEEK), "c"),
    ((1, 0, 1), (1, 0, 1, WEEK), "c"),
    ((0, 1, 1), (0, 1, 1, WEEK), "n"),
    ((1, 1, 1), (0, 1, 1, WEEK), "n"),
]


@dataclass(frozen=True)
class DailySeries:
    """The modelled daily series, ending with the last complete month."""

    values: pd.Series  # indexed by day (DatetimeIndex, daily), days without sales are 0
    months: pd.PeriodIndex  # complete calendar months inside it
    zero_days: list[dt.date]  # days inside the series without one clean purchase
    unused_days: list[dt.date]  # days after the last complete month (a partial month)

    @property
    def last_complete_month(self) -> pd.Period:
        return self.months[-1]

    def monthly_totals(self) -> pd.Series:
        return complete_month_totals(self.values)


@dataclass(frozen=True)
class ModelForecast:
    """One model's forecast over whole calendar months, with its in-sample fit."""

    monthly: pd.DataFrame  # index: months; columns mean and INTERVAL_COLUMNS
    daily: pd.DataFrame | None  # index: days; the same columns (None for monthly baselines)
    fitted: pd.Series | None  # one-step in-sample fitted values
    spec: str
    aic: float  # NaN for the naive baselines, which have no likelihood
    converged: bool = True  # False when an optimiser of the fit stopped short (statsmodels)


@dataclass(frozen=True)
class ForecastResult:
    series: DailySeries
    chosen: str
    forecasts: dict[str, ModelForecast]  # every model that fitted, on the whole series
    errors: pd.DataFrame  # backtest: one row per model, origin and scored month
    backtest: pd.DataFrame  # errors summarised per model and horizon (and "all")
    models: pd.DataFrame  # every candidate: kind, spec, status, note
    notes: list[str]
    fit_seconds: float


def complete_month_totals(values: pd.Series) -> pd.Series:
    """Totals of the complete calendar months of a daily series."""
    months = complete_months(values.index[0].date(), values.index[-1].date())
    return values.groupby(values.index.to_period("M")).sum().loc[months]


def complete_months(first_day: dt.date, last_day: dt.date) -> pd.PeriodIndex:
    """Calendar months whose first and last day both lie in [first_day, last_day]."""
    first = pd.Period(first_day, "M")
    if first_day != first.start_time.date():
        first += 1
    last = pd.Period(last_day, "M")
    if last_day != last.end_time.date():
        last -= 1
    if first > last:
        return pd.PeriodIndex([], freq="M")
    return pd.period_range(first, last, freq="M")


def horizon_months(last_complete: pd.Period, horizon: int) -> pd.PeriodIndex:
    """The `horizon` calendar months after the last complete month."""
    return pd.period_range(last_complete + 1, periods=horizon, freq="M")


def month_days(months: pd.PeriodIndex) -> pd.DatetimeIndex:
    """Every day of the given consecutive months."""
    return pd.date_range(months[0].start_time, months[-1].end_time.normalize(), freq="D")


def daily_series(days: pd.Series, values: pd.Series) -> DailySeries:
    """The daily series from its first day to the end of the last complete month, gaps as 0."""
    observed = pd.Series(values.to_numpy(dtype=float), index=pd.to_datetime(days)).sort_index()
    if observed.empty:
        raise NotEnoughData("the daily revenue table has no rows: nothing to forecast")
    first, last = observed.index[0].date(), observed.index[-1].date()
    months = complete_months(first, last)
    if months.empty:
        raise UserError(
            f"the data ({first} to {last}) holds no complete calendar month; "
            "the forecast needs at least one"
        )
    every_day = pd.date_range(first, months[-1].end_time.normalize(), freq="D")
    series = observed.reindex(every_day, fill_value=0.0)
    series.index.freq = "D"
    zero_days = [d.date() for d in every_day.difference(observed.index)]
    unused = [d.date() for d in observed.index[observed.index > every_day[-1]]]
    return DailySeries(series, months, zero_days, unused)


def _intervals(mean: np.ndarray, draws: np.ndarray) -> pd.DataFrame:
    """mean plus quantile interval ends; draws has one row per period, one column per path."""
    frame = pd.DataFrame({"mean": mean})
    for name, q in QUANTILES.items():
        frame[name] = np.quantile(draws, q, axis=1)
    return frame


def path_summaries(
    mean: np.ndarray, paths: np.ndarray, days: pd.DatetimeIndex, months: pd.PeriodIndex
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Monthly and daily forecast tables from a daily mean and simulated daily paths."""
    daily = _intervals(mean, paths).set_index(days)
    month_of_day = days.to_period("M")
    monthly_mean = pd.Series(mean, index=days).groupby(month_of_day).sum()
    monthly_paths = pd.DataFrame(paths, index=days).groupby(month_of_day).sum()
    monthly = _intervals(monthly_mean.to_numpy(), monthly_paths.to_numpy()).set_index(
        monthly_mean.index
    )
    return monthly.loc[months], daily


def _days_ahead(train: pd.Series, months: pd.PeriodIndex) -> pd.DatetimeIndex:
    """The days a daily model forecasts: those of the months ahead after the training series."""
    days = month_days(months)
    return days[days > train.index[-1]]


def _student_monthly(
    point: float, sds: np.ndarray, df: int, months: pd.PeriodIndex
) -> pd.DataFrame:
    """Interval ends from Student's t with `df` degrees of freedom: the baselines' sd is estimated
    from a handful of months, and normal quantiles then make intervals too narrow (the 80%
    interval of the mean of three months covered 3 of 9 backtest months on the generated data)."""
    frame = pd.DataFrame({"mean": np.full(len(months), point)}, index=months)
    for name, q in QUANTILES.items():
        frame[name] = point + student_t.ppf(q, df) * sds
    return frame


# A model takes the training series, the forecast months, a random generator and the number of
# simulated paths, and returns its forecast over those months.
Model = Callable[[pd.Series, pd.PeriodIndex, np.random.Generator, int], ModelForecast]


def naive_last_month(
    train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> ModelForecast:
    """Each month equals the last complete month; random-walk intervals from monthly changes."""
    totals = complete_month_totals(train).to_numpy()
    changes = np.diff(totals)
    sigma = float(np.sqrt(np.mean(changes**2))) if len(changes) else np.nan
    steps = np.arange(1, len(months) + 1)
    monthly = _student_monthly(float(totals[-1]), sigma * np.sqrt(steps), len(changes), months)
    return ModelForecast(monthly, None, None, "last complete month repeated", np.nan)


def naive_mean_3_months(
    train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> ModelForecast:
    """Each month equals the mean of the last three complete months (fewer when there are not three)."""
    recent = complete_month_totals(train).to_numpy()[-3:]
    sigma = float(np.std(recent, ddof=1)) if len(recent) > 1 else np.nan
    sd = sigma * np.sqrt(1 + 1 / len(recent))
    monthly = _student_monthly(
        float(recent.mean()), np.full(len(months), sd), len(recent) - 1, months
    )
    return ModelForecast(monthly, None, None, f"mean of the last {len(recent)} months", np.nan)


def seasonal_naive_weekly(
    train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> ModelForecast:
    """Each day equals the same weekday of the last week; paths add bootstrapped weekly changes."""
    days = _days_ahead(train, months)
    y = train.to_numpy()
    steps = len(days)
    last_week = y[-WEEK:]
    mean = np.resize(last_week, steps)
    # Centred so the paths spread around the point forecast instead of drifting with the sample.
    changes = y[WEEK:] - y[:-WEEK]
    changes = changes - changes.mean()
    shocks = rng.choice(changes, size=(steps, simulations), replace=True)
    paths = np.empty((steps, simulations))
    for step in range(steps):
        before = last_week[step] if step < WEEK else paths[step - WEEK]
        paths[step] = before + shocks[step]
    monthly, daily = path_summaries(mean, paths, days, months)
    fitted = train.shift(WEEK)
    return ModelForecast(monthly, daily, fitted, "same weekday of the last week", np.nan)


def _converged(result) -> bool:
    """Whether a statsmodels fit's optimiser converged, read off the fit: statsmodels warns of
    it too, but Python's warning filters are one per process, and another stage's thread
    leaving its own catch_warnings block restores them in the middle of a fit, so a warning
    may never reach the block that counts it."""
    return bool((result.mle_retvals or {}).get("converged", True))


def _simulated(
    result, train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    days = _days_ahead(train, months)
    steps = len(days)
    mean = np.asarray(result.forecast(steps))
    paths = np.asarray(result.simulate(steps, anchor="end", repetitions=simulations, rng=rng))
    monthly, daily = path_summaries(mean, paths.reshape(steps, simulations), days, months)
    fitted = pd.Series(np.asarray(result.fittedvalues), index=train.index)
    return monthly, daily, fitted


def _ets(error: str, seasonal: str) -> Model:
    def model(
        train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
    ) -> ModelForecast:
        if seasonal == "mul" and (train <= 0).any():
            raise ValueError("multiplicative seasonality needs every day above 0")
        result = ETSModel(
            train.to_numpy(),
            error=error,
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=WEEK,
        ).fit(disp=False)
        monthly, daily, fitted = _simulated(result, train, months, rng, simulations)
        spec = f"ETS({error[0].upper()},Ad,{seasonal[0].upper()}) weekly"
        return ModelForecast(monthly, daily, fitted, spec, float(result.aic), _converged(result))

    return model


def sarimax_weekly(
    train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> ModelForecast:
    """SARIMAX with a weekly season; the orders with the lowest AIC on the training data."""
    fits = []
    for order, seasonal_order, trend in SARIMAX_GRID:
        fits.append(
            (
                SARIMAX(
                    train.to_numpy(), order=order, seasonal_order=seasonal_order, trend=trend
                ).fit(disp=False, maxiter=SARIMAX_MAXITER),
                order,
                seasonal_order,
            )
        )
    result, order, seasonal_order = min(fits, key=lambda fit: fit[0].aic)
    monthly, daily, fitted = _simulated(result, train, months, rng, simulations)
    spec = f"SARIMAX{order}x{seasonal_order[:3]}{WEEK}, lowest AIC of {len(SARIMAX_GRID)}"
    converged = all(_converged(fit) for fit, _, _ in fits)
    return ModelForecast(monthly, daily, fitted, spec, float(result.aic), converged)


def unobserved_components(
    train: pd.Series, months: pd.PeriodIndex, rng: np.random.Generator, simulations: int
) -> ModelForecast:
    """Local linear trend plus a weekly seasonal: few parameters, suited to short series."""
    result = UnobservedComponents(train.to_numpy(), level="local linear trend", seasonal=WEEK).fit(
        disp=False
    )
    monthly, daily, fitted = _simulated(result, train, months, rng, simulations)
    return ModelForecast(
        monthly,
        daily,
        fitted,
        "local linear trend + weekly seasonal",
        float(result.aic),
        _converged(result),
    )


BASELINES: dict[str, Model] = {
    "naive_last_month": naive_last_month,
    "naive_mean_3_months": naive_mean_3_months,
    "seasonal_naive_weekly": seasonal_naive_weekly,
}
STATISTICAL: dict[str, Model] = {
    "ets_additive": _ets("add", "add"),
    "ets_multiplicative": _ets("mul", "mul"),
    "sarimax_weekly": sarimax_weekly,
    "unobserved_components": unobserved_components,
}


def backtest_origins(months: pd.PeriodIndex, horizon: int, max_origins: int) -> list[pd.Period]:
    """Month ends to forecast from: those with the whole horizon after them, or else every month
    with at least one month after it; the latest `max_origins` of them."""
    candidates = list(months[:-1])
    full = [m for m in candidates if m + horizon <= months[-1]]
    return (full or candidates)[-max_origins:]


def _fit(
    name: str,
    model: Model,
    train: pd.Series,
    months: pd.PeriodIndex,
    settings: ForecastConfig,
    warned: dict[str, int],
) -> ModelForecast:
    rng = np.random.default_rng(settings.seed)
    # What the warnings say is in the fits (`converged`) and the notes; in the log they would
    # only repeat it.
    with warning_filters.catch_warnings():
        warnings.simplefilter("ignore")
        forecast = model(train, months, rng, settings.simulations)
    if not forecast.converged:
        warned[name] = warned.get(name, 0) + 1
    return forecast


def _backtest_rows(
    name: str,
    model: Model,
    series: DailySeries,
    totals: pd.Series,
    origins: list[pd.Period],
    settings: ForecastConfig,
    warned: dict[str, int],
) -> list[dict]:
    """One row per origin and month after it that the data holds (`totals`, the series' complete
    months): the actual and forecast total."""
    rows = []
    for origin in origins:
        train = series.values[: origin.end_time.normalize()]
        ahead = horizon_months(origin, settings.horizon_months)
        forecast = _fit(name, model, train, ahead, settings, warned)
        for step, month in enumerate(ahead, start=1):
            if month in totals.index:
                row = forecast.monthly.loc[month]
                rows.append(
                    {
                        "model": name,
                        "origin": str(origin),
                        "month": str(month),
                        "horizon": step,
                        "actual": float(totals[month]),
                        "forecast": float(row["mean"]),
                        **{c: float(row[c]) for c in INTERVAL_COLUMNS},
                    }
                )
    return rows


def backtest_scores(errors: pd.DataFrame, scale: float | None) -> pd.DataFrame:
    """MAPE (%), MAE, MASE (MAE / `scale`) and interval coverage per model and horizon, and over
    all horizons ("all")."""
    columns = ["model", "horizon", "n", "mape", "mae", "mase", "coverage80", "coverage95"]
    if errors.empty:
        return pd.DataFrame(columns=columns)

    def summary(cells: pd.DataFrame) -> pd.Series:
        abs_error = (cells["forecast"] - cells["actual"]).abs()
        mae = abs_error.mean()
        return pd.Series(
            {
                "n": len(cells),
                "mape": 100 * (abs_error / cells["actual"].abs()).mean(),
                "mae": mae,
                "mase": mae / scale if scale else np.nan,
                "coverage80": cells["actual"].between(cells["lo80"], cells["hi80"]).mean(),
                "coverage95": cells["actual"].between(cells["lo95"], cells["hi95"]).mean(),
            }
        )

    by_horizon = errors.groupby(["model", "horizon"]).apply(summary, include_groups=False)
    by_horizon = by_horizon.reset_index()
    by_horizon["horizon"] = by_horizon["horizon"].astype(str)
    overall = errors.groupby("model").apply(summary, include_groups=False).reset_index()
    overall["horizon"] = "all"
    table = pd.concat([overall, by_horizon], ignore_index=True)
    table["n"] = table["n"].astype(int)
    return table[columns]


def forecast_revenue(series: DailySeries, settings: ForecastConfig) -> ForecastResult:
    """Backtest every model from month-end origins, choose by MAE, forecast the next months."""
    started = time.time()
    notes: list[str] = []
    candidates = dict(BASELINES)
    status: dict[str, str] = dict.fromkeys(BASELINES, "ok")
    if len(series.values) < settings.min_seasonal_days:
        notes.append(
            f"the series has {len(series.values)} days, fewer than forecast.min_seasonal_days "
            f"({settings.min_seasonal_days}): seasonal models skipped, baselines only"
        )
        status.update(dict.fromkeys(STATISTICAL, "skipped: series too short"))
    else:
        candidates.update(STATISTICAL)
        status.update(dict.fromkeys(STATISTICAL, "ok"))

    origins = backtest_origins(series.months, settings.horizon_months, settings.max_origins)
    if len(candidates) > len(BASELINES):
        short = [
            o
            for o in origins
            if (series.values.index <= o.end_time).sum() < settings.min_seasonal_days
        ]
        if short:
            notes.append(
                f"backtest origins {', '.join(map(str, short))} dropped: fewer than "
                f"{settings.min_seasonal_days} days of training"
            )
            origins = [o for o in origins if o not in short]
    totals = series.monthly_totals()
    warned: dict[str, int] = {}
    rows: list[dict] = []
    for name, model in list(candidates.items()):
        try:
            rows.extend(_backtest_rows(name, model, series, totals, origins, settings, warned))
        except FIT_ERRORS as exc:
            status[name] = f"failed: {exc}"
            notes.append(f"{name} left out: {exc}")
            del candidates[name]

    ahead = horizon_months(series.last_complete_month, settings.horizon_months)
    forecasts: dict[str, ModelForecast] = {}
    for name, model in list(candidates.items()):
        try:
            forecasts[name] = _fit(name, model, series.values, ahead, settings, warned)
        except FIT_ERRORS as exc:
            status[name] = f"failed: {exc}"
            notes.append(f"{name} left out: {exc}")
    for name, fits in warned.items():
        notes.append(f"{name}: the optimiser did not converge in {fits} fit(s)")

    errors = pd.DataFrame(
        rows,
        columns=["model", "origin", "month", "horizon", "actual", "forecast", *INTERVAL_COLUMNS],
    )
    changes = np.abs(np.diff(totals.to_numpy()))
    scale = float(changes.mean()) if len(changes) else None
    backtest = backtest_scores(errors, scale)
    overall = backtest[backtest["horizon"] == "all"].set_index("model")
    ranked = [name for name in forecasts if name in overall.index]
    if ranked:
        # Candidates are listed simplest first, so a tie goes to the simpler model.
        chosen = min(ranked, key=lambda name: overall.loc[name, "mae"])
    else:
        chosen = "naive_last_month"
        notes.append(
            "no month-end origin to backtest from: the last complete month is repeated, untested"
        )
    models = pd.DataFrame(
        [
            {
                "model": name,
                "kind": "baseline" if name in BASELINES else "statsmodels",
                "spec": forecasts[name].spec if name in forecasts else None,
                "aic": forecasts[name].aic if name in forecasts else np.nan,
                "status": status[name],
                "chosen": name == chosen,
            }
            for name in status
        ]
    )
    return ForecastResult(
        series=series,
        chosen=chosen,
        forecasts=forecasts,
        errors=errors,
        backtest=backtest,
        models=models,
        notes=notes,
        fit_seconds=time.time() - started,
    )


def monthly_table(result: ForecastResult, platform_fee_rate: float) -> pd.DataFrame:
    """Actual complete months and the chosen model's forecast months, value and platform revenue."""
    actual = result.series.monthly_totals().to_frame("mean")
    actual["kind"], actual["model"] = "actual", None
    ahead = result.forecasts[result.chosen].monthly.copy()
    ahead["kind"], ahead["model"] = "forecast", result.chosen
    table = pd.concat([actual, ahead])
    table.index = table.index.astype(str)
    table = table.rename_axis("month").reset_index().rename(columns={"mean": "value"})
    for column in ["value", *INTERVAL_COLUMNS]:
        # Billing is a fixed share of value, so its forecast and interval ends scale with it.
        name = "platform_revenue" if column == "value" else f"platform_revenue_{column}"
        table[name] = table[column] * platform_fee_rate
    return table


def candidates_table(result: ForecastResult) -> pd.DataFrame:
    """Every fitted model's monthly forecast over the horizon."""
    frames = []
    for name, forecast in result.forecasts.items():
        frame = forecast.monthly.rename(columns={"mean": "value"})
        frame.index = frame.index.astype(str)
        frames.append(frame.rename_axis("month").reset_index().assign(model=name))
    return pd.concat(frames, ignore_index=True)[["model", "month", "value", *INTERVAL_COLUMNS]]


def daily_table(result: ForecastResult, units: pd.Series) -> pd.DataFrame:
    """Actual days with the chosen model's fit, then its forecast days, for the chart."""
    chosen = result.forecasts[result.chosen]
    history = pd.DataFrame({"actual": result.series.values})
    history["units"] = units.reindex(history.index).fillna(0).astype("Int64")
    # A monthly baseline has no daily fit: the column stays numeric, its values missing.
    history["fitted"] = chosen.fitted if chosen.fitted is not None else np.nan
    if chosen.daily is not None:
        ahead = chosen.daily.rename(columns={"mean": "forecast"})
    else:
        # A monthly baseline has no daily shape: its month total is spread evenly over the days.
        days = month_days(chosen.monthly.index)
        per_day = (
            chosen.monthly["mean"].reindex(days.to_period("M")).to_numpy() / days.days_in_month
        )
        ahead = pd.DataFrame({"forecast": per_day}, index=days)
    table = pd.concat([history, ahead]).rename_axis("day").reset_index()
    table["day"] = table["day"].dt.date
    return table.reindex(
        columns=["day", "actual", "units", "fitted", "forecast", *INTERVAL_COLUMNS]
    )


def improvement_over_baselines(result: ForecastResult) -> dict[str, float]:
    """1 - MAE(chosen) / MAE(baseline) over the whole backtest, per baseline (> 0: better)."""
    overall = result.backtest[result.backtest["horizon"] == "all"].set_index("model")
    if result.chosen not in overall.index:
        return {}
    chosen = overall.loc[result.chosen, "mae"]
    return {
        name: float(1 - chosen / overall.loc[name, "mae"])
        for name in BASELINES
        if name in overall.index and overall.loc[name, "mae"] > 0
    }
