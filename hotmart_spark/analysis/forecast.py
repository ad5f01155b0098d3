"""Revenue forecast (Q5): naive baselines and statsmodels models on the daily series, in months.

Everything here works on the small daily series (one row per day) in pandas; the job collects it
from marts/daily_revenue. Every model forecasts days; months are sums of days. The backtest
forecasts from an origin every week: the first half of the origins chooses the model and
calibrates its intervals, the second half measures its error and the intervals' coverage.
Intervals are conformal: multiples of the forecast, from the log ratios of actual to forecast
in the backtest, so they are never below zero and hold as often as they held there.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.statespace.sarimax import SARIMAX
from statsmodels.tsa.statespace.structural import UnobservedComponents

from hotmart_spark import warning_filters
from hotmart_spark.config import ForecastConfig
from hotmart_spark.errors import NotEnoughData, UserError

WEEK = 7
# A backtest month: the windows after an origin are this many days each, so that every origin
# scores windows of one length; the forecast itself is of calendar months.
WINDOW_DAYS = 30
# Same weekday a year before.
YEAR_DAYS = 364
# Yearly seasonality is modelled once the series holds two whole years of it.
YEARLY_MIN_DAYS = 2 * 365
TOTAL = "total"
# Spark types of the backtest tables, which are empty when there is no origin to backtest from.
ERRORS_SCHEMA = (
    "model string, origin string, half string, horizon string, first_day string, "
    "last_day string, actual double, forecast double, lo95 double, lo80 double, hi80 double, "
    "hi95 double"
)
BACKTEST_SCHEMA = (
    "model string, horizon string, half string, n long, mape double, mae double, "
    "coverage80 double, coverage95 double, chosen boolean"
)
SELECTION, EVALUATION = "selection", "evaluation"
# What a model raises on data it cannot take (non-positive days, singular matrices); such a model
# is left out with a note instead of failing the run.
FIT_ERRORS = (ValueError, np.linalg.LinAlgError)
# Central interval levels and the columns of their ends.
LEVELS = {"80": 0.80, "95": 0.95}
INTERVAL_COLUMNS = ["lo95", "lo80", "hi80", "hi95"]
# lbfgs iterations per SARIMAX fit: the default 50 often stops short of convergence on daily data.
SARIMAX_MAXITER = 200
# One SARIMAX per order of differencing: AIC does not compare models whose data differ by a
# difference, so the backtest chooses between the two, as between every other candidate.
SARIMAX_ORDERS = {
    "sarimax_level": ((1, 0, 1), (1, 0, 1, WEEK), "c"),
    "sarimax_differenced": ((0, 1, 1), (0, 1, 1, WEEK), "n"),
}


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
class Fit:
    """One model fitted on a training series: its mean for each day after it."""

    mean: np.ndarray
    fitted: pd.Series | None  # one-step in-sample fitted values (None for the baselines)
    spec: str
    aic: float  # NaN for the naive baselines, which have no likelihood
    converged: bool = True  # False when an optimiser of the fit stopped short (statsmodels)


@dataclass(frozen=True)
class Calibration:
    """Interval ends as multiples of the forecast, from backtest log ratios of actual to
    forecast: per horizon a centre and a scale (median and median absolute deviation), and
    one quantile of the scaled deviations pooled over the horizons per level."""

    centre: dict[str, float]
    scale: dict[str, float]
    quantile: dict[str, float]  # per level; inf when the cells are too few for it

    def point(self, horizon: str, forecast: float) -> float:
        """The forecast times its median backtest ratio: the centre of its interval."""
        return max(forecast, 0.0) * math.exp(self.centre[horizon])

    def interval(self, horizon: str, forecast: float) -> dict[str, float]:
        ends = {}
        m, s = self.centre[horizon], self.scale[horizon]
        with np.errstate(over="ignore"):
            for level, q in self.quantile.items():
                if math.isinf(q):
                    # Too few cells for this level: no interval rather than [0, inf].
                    ends[f"lo{level}"] = ends[f"hi{level}"] = np.nan
                    continue
                ends[f"lo{level}"] = max(forecast, 0.0) * float(np.exp(m - q * s))
                ends[f"hi{level}"] = max(forecast, 0.0) * float(np.exp(m + q * s))
        return ends


@dataclass(frozen=True)
class ModelForecast:
    """One model's forecast over whole calendar months, with its in-sample fit."""

    monthly: pd.DataFrame  # index: months; columns mean and INTERVAL_COLUMNS
    raw: pd.Series  # index: months; the model's own sums, before the backtest ratio's centring
    total: dict[str, float]  # the months' sum: mean and INTERVAL_COLUMNS
    daily: pd.Series  # index: days ahead; the daily mean
    fitted: pd.Series | None
    spec: str
    aic: float
    converged: bool


@dataclass(frozen=True)
class ForecastResult:
    series: DailySeries
    chosen: str
    forecasts: dict[str, ModelForecast]  # every model that fitted, on the whole series
    errors: pd.DataFrame  # backtest: one row per model, origin and scored window
    backtest: pd.DataFrame  # errors summarised per model, horizon and half
    models: pd.DataFrame  # every candidate: kind, spec, status, note
    origins: list[dt.date]
    split: dt.date | None  # the first evaluation origin (None: too few origins to split)
    yearly: bool
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


def _days_ahead(train: pd.Series, months: pd.PeriodIndex) -> pd.DatetimeIndex:
    """The days a forecast covers: those of the months ahead after the training series."""
    days = month_days(months)
    return days[days > train.index[-1]]


# A model takes the training series and the number of days ahead and returns its fit.
Model = Callable[[pd.Series, int], Fit]


def _daily_mean_of_last(days: int, name: str) -> Model:
    def model(train: pd.Series, steps: int) -> Fit:
        recent = train.to_numpy()[-days:]
        return Fit(np.full(steps, recent.mean()), None, name, np.nan)

    return model


# Per day, so a 31-day month after a 29-day one is not forecast as the 29 days' total.
naive_last_month = _daily_mean_of_last(WINDOW_DAYS, "daily mean of the last 30 days")
naive_mean_3_months = _daily_mean_of_last(3 * WINDOW_DAYS, "daily mean of the last 90 days")


def seasonal_naive_weekly(train: pd.Series, steps: int) -> Fit:
    """Each day equals the same weekday of the last week."""
    mean = np.resize(train.to_numpy()[-WEEK:], steps)
    return Fit(mean, train.shift(WEEK), "same weekday of the last week", np.nan)


class TooShort(ValueError):
    """The training series of one backtest origin is too short for the model: that origin
    is skipped for it, the model is not left out."""


def seasonal_naive_yearly(train: pd.Series, steps: int) -> Fit:
    """Each day equals the same weekday a year before, times the growth of the last 90 days
    over the same 90 days a year before."""
    y = train.to_numpy()
    recent = 3 * WINDOW_DAYS
    if len(y) < YEAR_DAYS + recent:
        raise TooShort(f"a yearly baseline needs {YEAR_DAYS + recent} days of training")
    growth = y[-recent:].sum() / y[-YEAR_DAYS - recent : -YEAR_DAYS].sum()
    year_before = np.resize(y[len(y) - YEAR_DAYS :], steps)
    return Fit(year_before * growth, None, "same weekday a year before, times its growth", np.nan)


def _converged(result) -> bool:
    """Whether a statsmodels fit's optimiser converged, read off the fit: statsmodels warns of
    it too, but Python's warning filters are one per process, and another stage's thread
    leaving its own catch_warnings block restores them in the middle of a fit, so a warning
    may never reach the block that counts it."""
    return bool((result.mle_retvals or {}).get("converged", True))


def _statistical_fit(result, train: pd.Series, steps: int, spec: str) -> Fit:
    fitted = pd.Series(np.asarray(result.fittedvalues), index=train.index)
    mean = np.asarray(result.forecast(steps))
    return Fit(mean, fitted, spec, float(result.aic), _converged(result))


def _ets(error: str, seasonal: str) -> Model:
    def model(train: pd.Series, steps: int) -> Fit:
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
        spec = f"ETS({error[0].upper()},Ad,{seasonal[0].upper()}) weekly"
        return _statistical_fit(result, train, steps, spec)

    return model


def _sarimax(name: str) -> Model:
    order, seasonal_order, trend = SARIMAX_ORDERS[name]

    def model(train: pd.Series, steps: int) -> Fit:
        result = SARIMAX(
            train.to_numpy(), order=order, seasonal_order=seasonal_order, trend=trend
        ).fit(disp=False, maxiter=SARIMAX_MAXITER)
        spec = f"SARIMAX{order}x{seasonal_order[:3]}{WEEK}"
        return _statistical_fit(result, train, steps, spec)

    return model


def _unobserved_components(yearly: bool) -> Model:
    def model(train: pd.Series, steps: int) -> Fit:
        # Two harmonics of the year: a smooth yearly shape, few parameters.
        year = [{"period": 365.25, "harmonics": 2}] if yearly else None
        result = UnobservedComponents(
            train.to_numpy(), level="local linear trend", seasonal=WEEK, freq_seasonal=year
        ).fit(disp=False)
        spec = "local linear trend + weekly seasonal" + (" + yearly cycle" if yearly else "")
        return _statistical_fit(result, train, steps, spec)

    return model


BASELINES: dict[str, Model] = {
    "naive_last_month": naive_last_month,
    "naive_mean_3_months": naive_mean_3_months,
    "seasonal_naive_weekly": seasonal_naive_weekly,
}
STATISTICAL: dict[str, Model] = {
    "ets_additive": _ets("add", "add"),
    "ets_multiplicative": _ets("mul", "mul"),
    **{name: _sarimax(name) for name in SARIMAX_ORDERS},
    "unobserved_components": _unobserved_components(yearly=False),
}


def candidates(days: int, min_seasonal_days: int) -> dict[str, Model]:
    """The models a series of `days` days gets: the baselines; the statistical models from
    min_seasonal_days; with two years, a yearly baseline and a yearly cycle in the
    unobserved-components model."""
    models = dict(BASELINES)
    if days >= YEARLY_MIN_DAYS:
        models["seasonal_naive_yearly"] = seasonal_naive_yearly
    if days >= min_seasonal_days:
        models.update(STATISTICAL)
        if days >= YEARLY_MIN_DAYS:
            models["unobserved_components"] = _unobserved_components(yearly=True)
    return models


def backtest_origins(
    days: pd.DatetimeIndex, step_days: int, min_train_days: int, max_origins: int
) -> list[pd.Timestamp]:
    """Days to forecast from, oldest first: every `step_days` back from the last day with a
    whole backtest month after it, while at least `min_train_days` days train; the latest
    `max_origins`."""
    last = len(days) - WINDOW_DAYS - 1
    positions = range(last, min_train_days - 2, -step_days)
    return sorted(days[p] for p in list(positions)[:max_origins])


def _fit(name: str, model: Model, train: pd.Series, steps: int, warned: dict[str, int]) -> Fit:
    # What the warnings say is in the fits (`converged`) and the notes; in the log they would
    # only repeat it.
    with warning_filters.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model(train, steps)
    if not fit.converged:
        warned[name] = warned.get(name, 0) + 1
    return fit


def _backtest_rows(
    name: str,
    model: Model,
    values: pd.Series,
    origins: list[pd.Timestamp],
    horizon: int,
    split: pd.Timestamp | None,
    warned: dict[str, int],
) -> list[dict]:
    """One row per origin and backtest month after it that the series holds, and one for the
    sum of the `horizon` months when it holds them all."""
    rows = []
    y = values.to_numpy()
    for origin in origins:
        train = values[:origin]
        end = len(train)
        windows = min(horizon, (len(y) - end) // WINDOW_DAYS)
        try:
            fit = _fit(name, model, train, windows * WINDOW_DAYS, warned)
        except TooShort:
            continue
        half = SELECTION if split is None or origin < split else EVALUATION
        scored = []
        for step in range(1, windows + 1):
            lo, hi = (step - 1) * WINDOW_DAYS, step * WINDOW_DAYS
            scored.append((str(step), lo, hi, y[end + lo : end + hi].sum(), fit.mean[lo:hi].sum()))
        if windows == horizon:
            hi = horizon * WINDOW_DAYS
            scored.append((TOTAL, 0, hi, y[end : end + hi].sum(), fit.mean[:hi].sum()))
        for label, lo, hi, actual, forecast in scored:
            rows.append(
                {
                    "model": name,
                    "origin": str(origin.date()),
                    "half": half,
                    "horizon": label,
                    "first_day": str(values.index[end + lo].date()),
                    "last_day": str(values.index[end + hi - 1].date()),
                    "actual": float(actual),
                    "forecast": float(forecast),
                }
            )
    return rows


def calibrate(cells: pd.DataFrame, horizons: list[str], centred: bool = True) -> Calibration | None:
    """Conformal interval multiples for `horizons` from backtest cells (actual, forecast,
    horizon): per horizon, the median m and median absolute deviation s of r = log(actual /
    forecast); the deviations |r - m| / s of every horizon pooled; per level, their
    ceil((n + 1) level)-th smallest q (inf when that exceeds n, the finite-sample rule). The
    interval is forecast x exp(m +- q s), never below zero. A horizon without two cells of
    its own borrows the nearest shorter one's m and s (the total, the longest's). Not
    centred, m is 0: the interval is around the forecast itself, for forecasts that must stay
    as they are (reconciled ones, which add up); it still holds as often, and is wider when
    the forecasts were biased."""
    usable = cells[(cells["actual"] > 0) & (cells["forecast"] > 0)]
    if usable.empty:
        return None
    ratio = np.log(usable["actual"] / usable["forecast"])
    by_horizon = dict(tuple(ratio.groupby(usable["horizon"])))
    middle = float(np.median(ratio)) if centred else 0.0
    pooled_spread = float(np.median(np.abs(ratio - middle))) or 1e-12
    centre: dict[str, float] = {}
    scale: dict[str, float] = {}
    borrowed: tuple[float, float] | None = None
    # Shortest first, so a horizon borrows from the nearest shorter one and the total last.
    for h in [*horizons, TOTAL]:
        r = by_horizon.get(h)
        if r is not None and len(r) >= 2:
            m = float(np.median(r)) if centred else 0.0
            borrowed = (m, float(np.median(np.abs(r - m))) or pooled_spread)
        centre[h], scale[h] = borrowed or (middle, pooled_spread)
    scores = np.sort(
        np.concatenate([np.abs(r.to_numpy() - centre[h]) / scale[h] for h, r in by_horizon.items()])
    )
    n = len(scores)
    quantile = {}
    for level, coverage in LEVELS.items():
        rank = math.ceil((n + 1) * coverage)
        quantile[level] = float(scores[rank - 1]) if rank <= n else math.inf
    return Calibration(centre, scale, quantile)


def with_intervals(cells: pd.DataFrame, calibration: Calibration | None) -> pd.DataFrame:
    """The cells with the interval ends a calibration gives their forecasts."""
    cells = cells.copy()
    for column in INTERVAL_COLUMNS:
        cells[column] = np.nan
    if calibration is None or cells.empty:
        return cells
    ends = [
        calibration.interval(h, f) for h, f in zip(cells["horizon"], cells["forecast"], strict=True)
    ]
    for column in INTERVAL_COLUMNS:
        cells[column] = [e[column] for e in ends]
    return cells


def sequential_intervals(
    cells: pd.DataFrame, horizons: list[str], centred: bool = True
) -> pd.DataFrame:
    """One model's backtest cells with intervals as they could have been given at each origin:
    calibrated on the cells whose windows had ended by that day, none after it (the earliest
    origins, with too few such cells, get none)."""
    dated = []
    for origin, at_origin in cells.groupby("origin", sort=True):
        known = cells[cells["last_day"] <= origin]
        dated.append(with_intervals(at_origin, calibrate(known, horizons, centred)))
    return pd.concat(dated, ignore_index=True)


def _coverage(cells: pd.DataFrame, level: str) -> float:
    given = cells[cells[f"lo{level}"].notna()]
    if given.empty:
        return np.nan
    return float(given["actual"].between(given[f"lo{level}"], given[f"hi{level}"]).mean())


def backtest_scores(errors: pd.DataFrame) -> pd.DataFrame:
    """MAPE (%), MAE and interval coverage per model, horizon and half; "all" is the three
    backtest months together (not their total, which would count them twice)."""
    columns = ["model", "horizon", "half", "n", "mape", "mae", "coverage80", "coverage95"]
    if errors.empty:
        return pd.DataFrame(columns=columns)

    def summary(cells: pd.DataFrame) -> pd.Series:
        abs_error = (cells["forecast"] - cells["actual"]).abs()
        return pd.Series(
            {
                "n": len(cells),
                "mape": 100 * (abs_error / cells["actual"].abs()).mean(),
                "mae": abs_error.mean(),
                # Over the cells given an interval: the earliest origins had too few cells
                # before them to calibrate one.
                "coverage80": _coverage(cells, "80"),
                "coverage95": _coverage(cells, "95"),
            }
        )

    months = errors[errors["horizon"] != TOTAL]
    by_horizon = errors.groupby(["model", "horizon", "half"]).apply(summary, include_groups=False)
    overall = months.groupby(["model", "half"]).apply(summary, include_groups=False)
    overall = overall.reset_index().assign(horizon="all")
    table = pd.concat([overall, by_horizon.reset_index()], ignore_index=True)
    table["n"] = table["n"].astype(int)
    return table[columns]


def _forecast_months(
    fit: Fit, train: pd.Series, months: pd.PeriodIndex, calibration: Calibration | None
) -> tuple[pd.DataFrame, pd.Series, dict[str, float], pd.Series]:
    days = _days_ahead(train, months)
    daily = pd.Series(np.maximum(fit.mean[: len(days)], 0.0), index=days)
    means = daily.groupby(days.to_period("M")).sum().loc[months]
    rows = []
    # Reported: the model's sums times their median backtest ratio, the centre of the
    # interval (a model that fell short of the actual months in the backtest is raised).
    for step, (month, mean) in enumerate(means.items(), start=1):
        ends = calibration.interval(str(step), mean) if calibration else {}
        point = calibration.point(str(step), mean) if calibration else mean
        rows.append(
            {"month": month, "mean": point, **{c: ends.get(c, np.nan) for c in INTERVAL_COLUMNS}}
        )
    monthly = pd.DataFrame(rows).set_index("month")
    # The total is the months' sum; its interval, from the backtest's own three-month sums.
    total_ends = calibration.interval(TOTAL, float(means.sum())) if calibration else {}
    total = {
        "mean": float(monthly["mean"].sum()),
        **{c: total_ends.get(c, np.nan) for c in INTERVAL_COLUMNS},
    }
    return monthly, means, total, daily


def forecast_revenue(series: DailySeries, settings: ForecastConfig) -> ForecastResult:
    """Backtest every model from weekly origins, choose on the earlier half by MAE, score on
    the later half, calibrate intervals on backtest errors, forecast the next months."""
    started = time.time()
    notes: list[str] = []
    days = len(series.values)
    models = candidates(days, settings.min_seasonal_days)
    status: dict[str, str] = dict.fromkeys(models, "ok")
    statistical = days >= settings.min_seasonal_days
    if not statistical:
        notes.append(
            f"the series has {days} days, fewer than forecast.min_seasonal_days "
            f"({settings.min_seasonal_days}): seasonal models skipped, baselines only"
        )
        status.update(dict.fromkeys(STATISTICAL, "skipped: series too short"))
    # Without two years the report says a yearly pattern cannot be seen (`yearly`).
    yearly = days >= YEARLY_MIN_DAYS
    horizons = [str(h) for h in range(1, settings.horizon_months + 1)]
    train_days = settings.min_seasonal_days if statistical else WINDOW_DAYS
    origins = backtest_origins(
        series.values.index, settings.origin_step_days, train_days, settings.max_origins
    )
    # Earlier origins choose and calibrate, later ones score: one half each.
    split = origins[len(origins) // 2] if len(origins) >= 4 else None
    if origins and split is None:
        notes.append(
            f"only {len(origins)} backtest origin(s): the model is chosen and scored on the "
            "same months, so its error is not out of sample"
        )
    warned: dict[str, int] = {}
    rows: list[dict] = []
    for name, model in list(models.items()):
        try:
            rows.extend(
                _backtest_rows(
                    name, model, series.values, origins, settings.horizon_months, split, warned
                )
            )
        except FIT_ERRORS as exc:
            status[name] = f"failed: {exc}"
            notes.append(f"{name} left out: {exc}")
            del models[name]
    errors = pd.DataFrame(
        rows,
        columns=[
            "model", "origin", "half", "horizon", "first_day", "last_day", "actual", "forecast"
        ],
    )  # fmt: skip
    errors = (
        pd.concat(
            [sequential_intervals(cells, horizons) for _, cells in errors.groupby("model")],
            ignore_index=True,
        )
        if len(errors)
        else with_intervals(errors, None)
    )
    backtest = backtest_scores(errors)
    selection = backtest[(backtest["horizon"] == "all") & (backtest["half"] == SELECTION)]
    mae = selection.set_index("model")["mae"]
    ranked = [name for name in models if name in mae.index]
    if ranked:
        # Candidates are listed simplest first, so a tie goes to the simpler model.
        chosen = min(ranked, key=lambda name: mae[name])
    else:
        chosen = "naive_last_month"
        notes.append("no origin to backtest from: the last 30 days' mean is repeated, untested")

    ahead = horizon_months(series.last_complete_month, settings.horizon_months)
    steps = len(_days_ahead(series.values, ahead))
    forecasts: dict[str, ModelForecast] = {}
    for name, model in list(models.items()):
        try:
            fit = _fit(name, model, series.values, steps, warned)
        except FIT_ERRORS as exc:
            status[name] = f"failed: {exc}"
            notes.append(f"{name} left out: {exc}")
            continue
        # The forecast's intervals use every origin: the later half only scored them.
        calibration = calibrate(errors[errors["model"] == name], horizons)
        monthly, raw, total, daily = _forecast_months(fit, series.values, ahead, calibration)
        forecasts[name] = ModelForecast(
            monthly, raw, total, daily, fit.fitted, fit.spec, fit.aic, fit.converged
        )
    for name, fits in warned.items():
        notes.append(f"{name}: the optimiser did not converge in {fits} fit(s)")
    table = pd.DataFrame(
        [
            {
                "model": name,
                "kind": "statsmodels" if name in STATISTICAL else "baseline",
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
        models=table,
        origins=[o.date() for o in origins],
        split=None if split is None else split.date(),
        yearly=yearly,
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
    """Every fitted model's monthly forecast over the horizon, and its total ("total")."""
    frames = []
    for name, forecast in result.forecasts.items():
        frame = forecast.monthly.rename(columns={"mean": "value"})
        frame.index = frame.index.astype(str)
        total = pd.DataFrame([forecast.total], index=[TOTAL]).rename(columns={"mean": "value"})
        frame = pd.concat([frame, total])
        frames.append(frame.rename_axis("month").reset_index().assign(model=name))
    return pd.concat(frames, ignore_index=True)[["model", "month", "value", *INTERVAL_COLUMNS]]


def daily_table(result: ForecastResult, units: pd.Series) -> pd.DataFrame:
    """Actual days with the chosen model's fit, then its forecast days, for the chart. Days
    have no interval: the intervals are calibrated on month totals."""
    chosen = result.forecasts[result.chosen]
    history = pd.DataFrame({"actual": result.series.values})
    history["units"] = units.reindex(history.index).fillna(0).astype("Int64")
    # A baseline of daily means has no in-sample fit: the column stays numeric, values missing.
    history["fitted"] = chosen.fitted if chosen.fitted is not None else np.nan
    ahead = chosen.daily.to_frame("forecast")
    table = pd.concat([history, ahead]).rename_axis("day").reset_index()
    table["day"] = table["day"].dt.date
    return table.reindex(columns=["day", "actual", "units", "fitted", "forecast"])


def scored_backtest(result: ForecastResult) -> pd.DataFrame:
    """Every model's error over all backtest months on the half it is reported on, by model."""
    backtest = result.backtest
    return backtest[
        (backtest["horizon"] == "all") & (backtest["half"] == scored_half(result))
    ].set_index("model")


def improvement_over_baselines(result: ForecastResult) -> dict[str, float]:
    """1 - MAE(chosen) / MAE(baseline) on the later half of the backtest, per baseline (> 0:
    better)."""
    mae = scored_backtest(result)["mae"]
    if result.chosen not in mae.index:
        return {}
    baselines = result.models.loc[result.models["kind"] == "baseline", "model"]
    return {
        name: float(1 - mae[result.chosen] / mae[name])
        for name in mae.index
        if name in set(baselines) and mae[name] > 0
    }


def scored_half(result: ForecastResult) -> str:
    """The half of the backtest the error is reported on: the later one, unless there were
    too few origins to split them."""
    return EVALUATION if result.split is not None else SELECTION


CELL_COLUMNS = [
    "model", "chosen", "origin", "half", "horizon", "first_day", "last_day", "month", "actual",
    "forecast", "note",
]  # fmt: skip


def result_cells(result: ForecastResult) -> pd.DataFrame:
    """A forecast as one long table, so that many series' forecasts stack: every model's
    backtest cells (raw, before any interval), every fitted model's raw months ahead (horizon
    "1", "2", ...; no origin), and the notes (a row with only `note`). Raw: the reconciliation
    combines the models' own forecasts, as the backtest scored them."""
    backtest = result.errors.drop(columns=INTERVAL_COLUMNS, errors="ignore").assign(
        month=None, note=None
    )
    ahead = [
        {
            "model": name,
            "horizon": str(step),
            "month": str(month),
            "forecast": float(value),
        }
        for name, forecast in result.forecasts.items()
        for step, (month, value) in enumerate(forecast.raw.items(), start=1)
    ]
    notes = [{"note": note} for note in result.notes]
    cells = pd.concat(
        [frame for frame in (backtest, pd.DataFrame(ahead), pd.DataFrame(notes)) if len(frame)],
        ignore_index=True,
    ).reindex(columns=CELL_COLUMNS)
    cells["chosen"] = cells["model"] == result.chosen
    return cells
