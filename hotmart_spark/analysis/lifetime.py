"""Q3, deeper: BG/NBD (Fader, Hardie and Lee 2005) for how many purchase days a buyer has
left, Gamma-Gamma for what they spend, fitted on the collapsed tables of
transforms/lifetime.py (weighted rows, so the fit is on every buyer while the table stays
small) with lifetimes.

lifetimes is archived, but it is the library whose fitters take weights (pymc-marketing's
CLV models need one row per buyer; btyd resolves only to an alpha pinning numpy < 2), it
imports cleanly on the pinned stack with autograd >= 1.7 (3.6 MB installed, 1.5 s to import
with pandas), reproduces the published CDNOW parameters (tests/test_lifetime.py) and fits a
table of a few thousand rows in a tenth of a second.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hotmart_spark.errors import NotEnoughData

BGNBD_PARAMETERS = ("r", "alpha", "a", "b")
SPEND_PARAMETERS = ("p", "q", "v")
# Spend and the number of repeat days correlated beyond this (in absolute value, over repeat
# buyers) and the Gamma-Gamma model's independence assumption is too doubtful to use as is.
MAX_SPEND_FREQUENCY_CORRELATION = 0.3


@dataclass(frozen=True)
class Fitted:
    """A fitted model: its parameters with their 95% Wald intervals, and the fitter."""

    parameters: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    fitter: Any


# The optimiser's tolerances tried in turn. lifetimes refuses a BFGS result that stopped on
# "precision loss" (the gradient's own rounding noise) even at the optimum; on small tables
# that happens at its default 1e-7, and a looser tolerance then converges.
TOLERANCES = (1e-7, 1e-6, 1e-5)


def _quiet_fit(make: Any, *args: Any, **kwargs: Any) -> Any:
    """make() fitted, at the first tolerance that converges."""
    from lifetimes.utils import ConvergenceError

    for tolerance in TOLERANCES:
        fitter = make()
        # lifetimes calls pandas and autograd APIs that warn about their own future; the
        # fit's convergence is checked from its result, not from those warnings.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return fitter.fit(*args, tol=tolerance, **kwargs)
            except ConvergenceError:
                continue
    raise NotEnoughData(
        f"the {type(fitter).__name__} fit did not converge (tolerances down to "
        f"{TOLERANCES[-1]:g}): too few buyers or repeats to estimate it"
    )


def _fitted(fitter: Any, names: tuple[str, ...]) -> Fitted:
    summary = fitter.summary
    return Fitted(
        parameters={name: float(fitter.params_[name]) for name in names},
        intervals={
            name: (
                float(summary.loc[name, "lower 95% bound"]),
                float(summary.loc[name, "upper 95% bound"]),
            )
            for name in names
        },
        fitter=fitter,
    )


def fit_purchases(table: pd.DataFrame) -> Fitted:
    """BG/NBD on a pattern table (repeat_days, last_repeat_day, age_days, buyers)."""
    from lifetimes import BetaGeoFitter

    if table.empty or not (table["repeat_days"] > 0).any():
        raise NotEnoughData("no buyer bought on a second day: there is no repeat to model")
    fitter = _quiet_fit(
        lambda: BetaGeoFitter(penalizer_coef=0.0),
        table["repeat_days"],
        table["last_repeat_day"],
        table["age_days"],
        weights=table["buyers"],
    )
    return _fitted(fitter, BGNBD_PARAMETERS)


def fit_spend(table: pd.DataFrame) -> Fitted:
    """Gamma-Gamma on a spend table (repeat_days, repeat_value, buyers), q kept above 1 so
    the mean spend exists."""
    from lifetimes import GammaGammaFitter

    if len(table) < 3:
        raise NotEnoughData("fewer than three repeat buyers with a spend to model")
    fitter = _quiet_fit(
        lambda: GammaGammaFitter(penalizer_coef=0.0),
        table["repeat_days"],
        table["repeat_value"],
        weights=table["buyers"],
        q_constraint=True,
    )
    return _fitted(fitter, SPEND_PARAMETERS)


def spend_frequency_correlation(table: pd.DataFrame) -> float:
    """Pearson's correlation of repeat days and mean spend over repeat buyers (the spend
    table's rows weighted by their buyers): Gamma-Gamma assumes none."""
    weights = table["buyers"].to_numpy(float)
    x = table["repeat_days"].to_numpy(float)
    m = table["repeat_value"].to_numpy(float)
    if len(table) < 2 or weights.sum() <= 0:
        return float("nan")
    mx, mm = np.average(x, weights=weights), np.average(m, weights=weights)
    cov = np.average((x - mx) * (m - mm), weights=weights)
    sx = np.sqrt(np.average((x - mx) ** 2, weights=weights))
    sm = np.sqrt(np.average((m - mm) ** 2, weights=weights))
    return float(cov / (sx * sm)) if sx > 0 and sm > 0 else float("nan")


def predicted(table: pd.DataFrame, model: Fitted, horizon_days: float) -> pd.DataFrame:
    """The pattern table with each pattern's expected purchase days in the next
    horizon_days and its probability of being alive at the end of the observation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        args = (table["repeat_days"], table["last_repeat_day"], table["age_days"])
        expected = model.fitter.conditional_expected_number_of_purchases_up_to_time(
            horizon_days, *args
        )
        alive = model.fitter.conditional_probability_alive(*args)
    return table.assign(
        expected_purchase_days=np.asarray(expected, float),
        p_alive=np.asarray(alive, float),
    )


FREQUENCY_GROUPS = ("0", "1", "2", "3", "4", "5", "6+")
# The calibration checks: the period's last months held out, and (generated input only) the
# months the generator simulated past the period.
HOLDOUT = "holdout"
PLANTED = "planted"


def frequency_group(repeat_days: pd.Series) -> pd.Series:
    return repeat_days.clip(upper=6).astype(int).astype(str).replace("6", "6+")


def calibration(table: pd.DataFrame, actual_column: str) -> pd.DataFrame:
    """Predicted against actual purchase days per buyer, by repeat days in the fitting
    window (the standard calibration chart's groups, 6 and more together). `table` is a
    predicted pattern table with the actual purchase days of its buyers summed in
    actual_column."""
    grouped = (
        table.assign(
            group=frequency_group(table["repeat_days"]),
            predicted_total=table["expected_purchase_days"] * table["buyers"],
        )
        .groupby("group")
        .agg(
            buyers=("buyers", "sum"),
            predicted=("predicted_total", "sum"),
            **{actual_column: (actual_column, "sum")},
        )
        .reindex(list(FREQUENCY_GROUPS))
        .dropna(subset=["buyers"])
        .reset_index()
        # Counts, whichever groups are present (reindexing made them floats for the absent).
        .astype({"buyers": "int64", actual_column: "int64"})
        .rename(columns={actual_column: "actual"})
    )
    return grouped.assign(
        predicted_per_buyer=grouped["predicted"] / grouped["buyers"],
        actual_per_buyer=grouped["actual"] / grouped["buyers"],
    )


def relative_error(predicted_total: float, actual_total: float) -> float | None:
    """(predicted - actual) / actual, None when nothing actually happened."""
    return (predicted_total - actual_total) / actual_total if actual_total > 0 else None
