"""Forecasts per series reconciled with the total (Q5): methods by hand, and coherence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotmart_spark.analysis import forecast as fc
from hotmart_spark.analysis import reconcile as rc

HORIZONS = ["1", "2", "3"]


def test_bottom_up_keeps_the_series_and_sums_them() -> None:
    base = np.array([[10.0, 20.0], [3.0, 4.0], [5.0, 6.0]])  # total, a, b by two windows
    reconciled = rc.reconcile_windows("bottom_up", base, np.empty((3, 0)), np.empty((3, 0)))
    np.testing.assert_array_equal(reconciled, [[8.0, 10.0], [3.0, 4.0], [5.0, 6.0]])


def test_weighted_least_squares_by_hand() -> None:
    # Residual variances 4, 1, 1 (total, a, b: residuals 2, 1 and -1 twice). One constraint,
    # total = a + b: the projection moves each forecast by the incoherence d = t - a - b in
    # proportion to its variance: t - d w0 / sum(w), a + d w1 / sum(w), b + d w2 / sum(w).
    # t, a, b = 10, 3, 5: d = 2, sum(w) = 6: 10 - 8/6, 3 + 2/6, 5 + 2/6.
    residuals = np.array([[2.0, 2.0], [1.0, 1.0], [-1.0, -1.0]])
    base = np.array([[10.0], [3.0], [5.0]])
    reconciled = rc.reconcile_windows("wls_var", base, residuals, np.zeros_like(residuals))
    np.testing.assert_allclose(reconciled[:, 0], [10 - 8 / 6, 3 + 2 / 6, 5 + 2 / 6], rtol=1e-7)


@pytest.mark.parametrize("method", rc.METHODS)
def test_coherent_forecasts_stay_as_they_are(method: str) -> None:
    # A reconciliation is a projection onto coherent vectors: those already coherent stay.
    rng = np.random.default_rng(1)
    bottom = rng.uniform(1, 10, size=(3, 4))
    base = np.vstack([bottom.sum(axis=0), bottom])
    actual = base + rng.normal(0, 1, size=base.shape)
    reconciled = rc.reconcile_windows(method, base, actual, base)
    np.testing.assert_allclose(reconciled, base, rtol=1e-6)


def hierarchy_cells(seed: int = 7, origins: int = 12) -> pd.DataFrame:
    """A hand-built hierarchy: two series whose sum is the total exactly, each forecast with
    its own error, the total forecast with a larger one, from 12 weekly origins (6 + 6)."""
    rng = np.random.default_rng(seed)
    rows = []
    days = pd.date_range("2016-01-01", periods=origins, freq="7D")
    level = {"a": 300.0, "b": 100.0}
    for i, origin in enumerate(days):
        half = fc.SELECTION if i < origins // 2 else fc.EVALUATION
        for step, h in enumerate(HORIZONS):
            first = origin + pd.Timedelta(days=30 * step + 1)
            last = first + pd.Timedelta(days=29)
            actual = {s: level[s] * (1 + 0.1 * rng.standard_normal()) for s in level}
            forecast = {s: level[s] * (1 + 0.05 * rng.standard_normal()) for s in level}
            actual["total"] = actual["a"] + actual["b"]
            forecast["total"] = 400.0 * (1 + 0.2 * rng.standard_normal())
            for series in ("total", "a", "b"):
                rows.append(
                    {
                        "series": series,
                        "model": "m",
                        "chosen": True,
                        "origin": str(origin.date()),
                        "half": half,
                        "horizon": h,
                        "first_day": str(first.date()),
                        "last_day": str(last.date()),
                        "month": None,
                        "actual": actual[series],
                        "forecast": forecast[series],
                    }
                )
    ahead = {"total": [430.0, 420.0, 410.0], "a": [310.0, 305.0, 300.0], "b": [95, 96, 97]}
    for series, values in ahead.items():
        for step, value in enumerate(values, start=1):
            rows.append(
                {
                    "series": series,
                    "model": "m",
                    "chosen": True,
                    "horizon": str(step),
                    "month": f"2016-0{6 + step}",
                    "forecast": value,
                }
            )
    return pd.DataFrame(rows)


def test_reconciled_series_add_up_to_the_total_exactly() -> None:
    result = rc.reconcile(hierarchy_cells(), HORIZONS)
    ahead = result.ahead.set_index(["horizon", "series"])["value"]
    for h in [*HORIZONS, fc.TOTAL]:
        assert ahead[(h, "total")] == ahead[(h, "a")] + ahead[(h, "b")]
    for series in ("total", "a", "b"):
        assert ahead[(fc.TOTAL, series)] == pytest.approx(
            sum(ahead[(h, series)] for h in HORIZONS), rel=1e-12
        )
    # Every backtest window of the chosen method adds up too.
    cells = result.cells[result.cells["horizon"].isin(HORIZONS)]
    wide = cells.pivot(index=["origin", "horizon"], columns="series", values="forecast")
    np.testing.assert_array_equal(wide["total"], wide["a"] + wide["b"])


def test_the_method_is_chosen_on_the_earlier_half_and_scored_on_the_later() -> None:
    result = rc.reconcile(hierarchy_cells(), HORIZONS)
    pooled = result.scores[result.scores["series"] == rc.ALL_SERIES]
    selection = pooled[pooled["half"] == fc.SELECTION].set_index("method")["relative_mae"]
    assert result.method == selection.idxmin()
    assert set(pooled["half"]) == {fc.SELECTION, fc.EVALUATION}
    # Each half's windows: 6 origins x 3 months x 3 series.
    assert set(pooled["n"]) == {54}
    # The total's forecast is far worse than its series' sum here (errors of 20% against 5%),
    # so any method that leans on the series beats the unreconciled total.
    chosen = result.scores[result.scores["chosen"]].set_index(["series", "half"])
    assert chosen.loc[("total", fc.EVALUATION), "relative_mae"] < 0.8
    # Bottom-up leaves the series' own forecasts as they were.
    bottom_up = result.scores[(result.scores["method"] == "bottom_up")]
    assert (bottom_up[bottom_up["series"] == "a"]["relative_mae"] == 1.0).all()


def test_intervals_are_around_the_reconciled_forecast() -> None:
    result = rc.reconcile(hierarchy_cells(), HORIZONS)
    ahead = result.ahead
    given = ahead[ahead["lo80"].notna()]
    assert len(given) == len(ahead)
    assert ((given["lo95"] <= given["value"]) & (given["value"] <= given["hi95"])).all()
    assert ((given["lo80"] <= given["value"]) & (given["value"] <= given["hi80"])).all()


def test_without_backtest_windows_the_series_are_summed_untested() -> None:
    cells = hierarchy_cells()
    result = rc.reconcile(cells[cells["origin"].isna()], HORIZONS)
    assert result.method == "bottom_up"
    assert result.notes == ["no backtest window for every series: summed bottom-up, untested"]
    ahead = result.ahead.set_index(["horizon", "series"])["value"]
    assert ahead[("1", "total")] == 310.0 + 95.0


def test_forecasts_are_centred_as_the_headline_is_with_only_the_past() -> None:
    # Every window's actual is 1.1 times its forecast. The first origin knows no ended window
    # and stays raw; the later ones, and the months ahead, are raised by 1.1.
    origins = ["2016-01-01", "2016-02-15", "2016-04-01"]
    rows = [
        {
            "series": "a",
            "origin": o,
            "horizon": "1",
            "first_day": str((pd.Timestamp(o) + pd.Timedelta(days=1)).date()),
            "last_day": str((pd.Timestamp(o) + pd.Timedelta(days=30)).date()),
            "actual": 110.0,
            "forecast": 100.0,
        }
        for o in origins
    ] + [{"series": "a", "origin": None, "horizon": "1", "month": "2016-06", "forecast": 200.0}]
    points = rc.centred(pd.DataFrame(rows), ["1"]).set_index("origin", drop=False)
    assert points.loc["2016-01-01", "forecast"] == 100.0
    assert points.loc["2016-02-15", "forecast"] == pytest.approx(110.0)
    assert points.loc["2016-04-01", "forecast"] == pytest.approx(110.0)
    assert points[points["origin"].isna()]["forecast"].item() == pytest.approx(220.0)
