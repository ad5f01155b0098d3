"""Forecasts per category and per niche made to add up to the total (Q5), in pandas and numpy.

Each series of a grouping (the total, and its categories or its niches) has its own chosen
model's forecasts at every backtest origin and for the months ahead; they do not add up. A
reconciliation method maps the vector of one window's forecasts (total first, then the series)
to a coherent one, whose total is the sum of its series. Methods (hierarchicalforecast):
bottom-up (the total is the series' sum), and MinT (Wickramasuriya, Athanasopoulos and Hyndman
2019) weighted by the forecast errors' variances (wls_var) or by their shrunk covariance
(mint_shrink). The errors are the backtest's month windows, not in-sample residuals: the
baselines have none, and a month ahead is what is reconciled. The earlier half of the origins
chooses the method, by the geometric mean over series of its MAE relative to the unreconciled
forecasts'; the later half scores it with the errors' covariance of the earlier half only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from hierarchicalforecast.methods import BottomUp, MinTrace

from hotmart_spark.analysis import forecast as fc

# The total's name among a grouping's series.
TOP = "total"
# Simplest first: a tie goes to the simpler method.
METHODS = ("bottom_up", "wls_var", "mint_shrink")
ALL_SERIES = "all"
# hierarchicalforecast raises bare Exceptions (errors too close to zero, an ill-conditioned
# covariance): such a method is left out with a note, and bottom-up never raises them.
LIBRARY_ERRORS = (Exception,)
SCORE_COLUMNS = [
    "method", "series", "half", "n", "mae", "base_mae", "relative_mae", "coverage80",
    "coverage95", "chosen",
]  # fmt: skip


@dataclass(frozen=True)
class Reconciled:
    method: str  # the chosen method
    # Per series and month ahead ("1", "2", ... and fc.TOTAL for their sum): the month, the
    # unreconciled forecast (base), the reconciled one (value) and its interval.
    ahead: pd.DataFrame
    # The chosen method's backtest cells per series, with the intervals each origin could give.
    cells: pd.DataFrame
    scores: pd.DataFrame  # SCORE_COLUMNS: per method, series (and ALL_SERIES) and half
    notes: list[str]


def summing_matrix(bottoms: int) -> np.ndarray:
    """The total's row of ones over the identity: the series as sums of the bottom series."""
    return np.vstack([np.ones((1, bottoms)), np.eye(bottoms)])


def reconcile_windows(
    method: str, forecasts: np.ndarray, actual_in: np.ndarray, forecast_in: np.ndarray
) -> np.ndarray:
    """Coherent forecasts (series x windows, the total first) from base ones, with the error
    covariance estimated from the windows (actual_in - forecast_in)."""
    s = summing_matrix(forecasts.shape[0] - 1)
    if method == "bottom_up":
        reconciled = BottomUp().fit_predict(S=s, y_hat=forecasts)["mean"]
    else:
        reconciled = MinTrace(method).fit_predict(
            S=s, y_hat=forecasts, y_insample=actual_in, y_hat_insample=forecast_in
        )["mean"]
    # Revenue is never below zero. A series MinT takes below zero (a small one, next to a
    # large error elsewhere) is set to zero and the total stays the series' sum: the library's
    # non-negative variant solves a quadratic programme per window and returns float32.
    bottom = np.clip(np.asarray(reconciled, dtype=float)[1:], 0.0, None)
    return np.vstack([bottom.sum(axis=0), bottom])


def _gmean(values: pd.Series) -> float:
    values = values[(values > 0) & np.isfinite(values)]
    return float(np.exp(np.log(values).mean())) if len(values) else np.nan


def _three_month_cells(cells: pd.DataFrame, horizons: list[str]) -> pd.DataFrame:
    """Each origin's sum of its month windows, as the fc.TOTAL horizon, where it has them all."""
    whole = cells.groupby(["series", "origin"]).filter(lambda c: len(c) == len(horizons))
    if whole.empty:
        return whole
    sums = whole.groupby(["series", "origin"], as_index=False).agg(
        half=("half", "first"),
        first_day=("first_day", "min"),
        last_day=("last_day", "max"),
        actual=("actual", "sum"),
        base=("base", "sum"),
        forecast=("forecast", "sum"),
    )
    return sums.assign(horizon=fc.TOTAL)


def _points(cells: pd.DataFrame, calibration: fc.Calibration | None) -> pd.DataFrame:
    if calibration is None:
        return cells
    points = [
        calibration.point(h, f) for h, f in zip(cells["horizon"], cells["forecast"], strict=True)
    ]
    return cells.assign(forecast=points)


def centred(chosen: pd.DataFrame, horizons: list[str]) -> pd.DataFrame:
    """Each series' forecasts times its median backtest ratio of actual to forecast, as the
    total's headline is (fc.Calibration.point): at each origin from the windows that had ended
    by then, ahead from every window. So the total's series is its headline forecast."""
    parts = []
    for _, cells in chosen.groupby("series", sort=False):
        backtest = cells[cells["origin"].notna()]
        for origin, at_origin in backtest.groupby("origin"):
            known = backtest[backtest["last_day"] <= origin]
            parts.append(_points(at_origin, fc.calibrate(known, horizons)))
        parts.append(_points(cells[cells["origin"].isna()], fc.calibrate(backtest, horizons)))
    return pd.concat(parts, ignore_index=True)


def reconcile(chosen: pd.DataFrame, horizons: list[str]) -> Reconciled:
    """Reconcile one grouping. `chosen`: the fc.result_cells of each series' chosen model with
    a `series` column, the total's named TOP; backtest rows have an origin, rows ahead a month.
    The forecasts reconciled are centred as the headline's are (`centred`)."""
    notes: list[str] = []
    chosen = centred(chosen, horizons)
    bottoms = [s for s in dict.fromkeys(chosen["series"]) if s != TOP]
    order = [TOP, *bottoms]
    months = chosen[chosen["origin"].isna() & chosen["month"].notna()]
    backtest = chosen[chosen["origin"].notna() & chosen["horizon"].isin(horizons)]
    key = ["origin", "horizon"]
    base = backtest.pivot(index=key, columns="series", values="forecast").reindex(columns=order)
    actual = backtest.pivot(index=key, columns="series", values="actual").reindex(columns=order)
    # Windows where a series' model had no forecast (too little training) are left out whole.
    complete = base.notna().all(axis=1) & actual.notna().all(axis=1)
    base, actual = base[complete].clip(lower=0.0), actual[complete]
    windows = (
        backtest[backtest["series"] == TOP]
        .set_index(key)[["half", "first_day", "last_day"]]
        .reindex(base.index)
    )
    selection = (windows["half"] == fc.SELECTION).to_numpy()

    def long(values: pd.DataFrame, name: str) -> pd.Series:
        return values.rename_axis(columns="series").stack().rename(name)

    rows, frames = [], {}
    for method in METHODS if len(base) else ():
        selected = selection if selection.any() else np.ones(len(base), dtype=bool)
        try:
            reconciled = reconcile_windows(
                method,
                base.to_numpy().T,
                actual.to_numpy()[selected].T,
                base.to_numpy()[selected].T,
            )
        except LIBRARY_ERRORS as exc:
            notes.append(f"{method} left out: {exc}")
            continue
        frame = pd.concat(
            [
                long(actual, "actual"),
                long(base, "base"),
                long(pd.DataFrame(reconciled.T, index=base.index, columns=order), "forecast"),
            ],
            axis=1,
        ).reset_index()
        frame = frame.join(windows, on=key)
        frames[method] = frame
        for (series, half), c in frame.groupby(["series", "half"]):
            mae = float((c["forecast"] - c["actual"]).abs().mean())
            base_mae = float((c["base"] - c["actual"]).abs().mean())
            rows.append(
                {
                    "method": method,
                    "series": series,
                    "half": half,
                    "n": len(c),
                    "mae": mae,
                    "base_mae": base_mae,
                    "relative_mae": mae / base_mae if base_mae > 0 else np.nan,
                }
            )
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS[:7])
    pooled = (
        scores.groupby(["method", "half"], as_index=False)
        .agg(n=("n", "sum"), relative_mae=("relative_mae", _gmean))
        .assign(series=ALL_SERIES)
    )
    scores = pd.concat([pooled, scores], ignore_index=True)
    choice = pooled[pooled["half"] == fc.SELECTION].set_index("method")["relative_mae"].dropna()
    if choice.empty:
        method = "bottom_up"
        notes.append("no backtest window for every series: summed bottom-up, untested")
    else:
        method = min((m for m in METHODS if m in choice.index), key=lambda m: choice[m])
    if len(base) and not selection.any():
        notes.append("too few origins to split: the method is chosen and scored on the same ones")
    scores["chosen"] = scores["method"] == method

    # The chosen method's cells, with the interval each origin could have given, from the
    # windows that had ended by then.
    cells = frames.get(method, pd.DataFrame(columns=[*key, "series", "actual", "base", "forecast"]))
    cells = pd.concat([cells, _three_month_cells(cells, horizons)], ignore_index=True)
    dated = (
        pd.concat(
            [
                fc.sequential_intervals(c, horizons, centred=False)
                for _, c in cells.groupby("series")
            ],
            ignore_index=True,
        )
        if len(cells)
        else fc.with_intervals(cells, None)
    )
    for series, c in dated.groupby("series"):
        for half, h in c[c["horizon"] != fc.TOTAL].groupby("half"):
            at = (scores["method"] == method) & (scores["series"] == series)
            at &= scores["half"] == half
            scores.loc[at, "coverage80"] = fc._coverage(h, "80")
            scores.loc[at, "coverage95"] = fc._coverage(h, "95")

    # The months ahead, reconciled with every backtest window's errors.
    ahead_base = months.pivot(index="horizon", columns="series", values="forecast")
    ahead_base = ahead_base.reindex(index=horizons, columns=order).clip(lower=0.0)
    if ahead_base.isna().any().any():
        missing = [s for s in order if ahead_base[s].isna().any()]
        raise ValueError(f"no forecast ahead for {', '.join(missing)}")
    try:
        values = reconcile_windows(
            method if len(base) else "bottom_up",
            ahead_base.to_numpy().T,
            actual.to_numpy().T,
            base.to_numpy().T,
        )
    except LIBRARY_ERRORS as exc:
        notes.append(f"{method} failed on every window's errors ({exc}): summed bottom-up")
        values = reconcile_windows("bottom_up", ahead_base.to_numpy().T, actual.T, base.T)
    month_of = months[months["series"] == TOP].set_index("horizon")["month"]
    ahead_rows = []
    for i, series in enumerate(order):
        # Around the reconciled forecast itself, which must keep adding up.
        calibration = fc.calibrate(cells[cells["series"] == series], horizons, centred=False)
        for step, h in enumerate([*horizons, fc.TOTAL]):
            last = step == len(horizons)
            value = float(values[i].sum() if last else values[i, step])
            base_value = float(ahead_base[series].sum() if last else ahead_base.loc[h, series])
            ends = calibration.interval(h, value) if calibration else {}
            ahead_rows.append(
                {
                    "series": series,
                    "horizon": h,
                    "month": None if last else month_of[h],
                    "base": base_value,
                    "value": value,
                    **{c: ends.get(c, np.nan) for c in fc.INTERVAL_COLUMNS},
                }
            )
    scores = scores.reindex(columns=SCORE_COLUMNS)
    return Reconciled(method, pd.DataFrame(ahead_rows), dated, scores, notes)
