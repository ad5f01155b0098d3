"""What each chart is fed, in the order it draws it.

Marts come back from Parquet in no particular order (files, tasks); a chart drawn through
rows as they came can zigzag or shuffle its bars. Each function here puts a chart's rows in
drawing order, so the charts draw what they are given and a test can check the input.
"""

from __future__ import annotations

import pandas as pd

from hotmart_spark.analysis import lifetime as ltv

# The effect estimates from the top of the chart down: the answer first, then its checks.
ROLE_ORDER = ("headline", "check", "naive", "uncorrected", "placebo")


def lorenz_points(curve: pd.DataFrame) -> pd.DataFrame:
    """The Pareto curve from (0, 0), producers by share; ties keep value ascending."""
    points = curve[["producer_share", "revenue_share"]]
    if not ((points["producer_share"] == 0) & (points["revenue_share"] == 0)).any():
        points = pd.concat(
            [pd.DataFrame({"producer_share": [0.0], "revenue_share": [0.0]}), points]
        )
    return points.sort_values(["producer_share", "revenue_share"]).reset_index(drop=True)


def in_month_order(monthly: pd.DataFrame) -> pd.DataFrame:
    """Rows by month (YYYY-MM sorts as text)."""
    return monthly.sort_values("month").reset_index(drop=True)


def weekday_hour_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Value by weekday (rows 1-7, Monday first) and hour (columns 0-23), 0 where none."""
    return (
        table.pivot_table(index="weekday", columns="hour", values="value", aggfunc="sum")
        .reindex(index=range(1, 8), columns=range(24))
        .fillna(0.0)
    )


def top_levels(breakdowns: pd.DataFrame, dimensions: tuple[str, ...], top: int) -> pd.DataFrame:
    """Per dimension, its `top` levels by share of value, largest first (ties by name)."""
    parts = [
        breakdowns[breakdowns["dimension"] == d]
        .sort_values(["value_share", "level"], ascending=[False, True])
        .head(top)
        for d in dimensions
    ]
    return pd.concat(parts).reset_index(drop=True)


def largest_first(table: pd.DataFrame, share: str, label: str) -> pd.DataFrame:
    """Rows by `share`, largest first (ties by label)."""
    return table.sort_values([share, label], ascending=[False, True]).reset_index(drop=True)


def importance_by_group(importance: pd.DataFrame) -> pd.DataFrame:
    """One row per feature group (its features share one importance), most important first."""
    return largest_first(
        importance.dropna(subset=["permutation_importance"]).drop_duplicates("group"),
        "permutation_importance",
        "group",
    )


def estimates_by_role(effects: pd.DataFrame) -> pd.DataFrame:
    """The effect estimates that have a value, in ROLE_ORDER, then by method."""
    rank = effects["role"].map({role: i for i, role in enumerate(ROLE_ORDER)})
    return (
        effects.assign(_rank=rank.fillna(len(ROLE_ORDER)))
        .dropna(subset=["estimate"])
        .sort_values(["_rank", "method"])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def best_first(backtest: pd.DataFrame) -> pd.DataFrame:
    """The backtest's models by error (MAPE), the best first (ties by name)."""
    return backtest.sort_values(["mape", "model"]).reset_index(drop=True)


def scored_backtest(backtest: pd.DataFrame, half: str) -> pd.DataFrame:
    """Every model's error over all backtest months, on the half the forecast reports it on
    (insights' backtest_half)."""
    return backtest[(backtest["horizon"] == "all") & (backtest["half"] == half)]


# The lifetime checks from left to right, and the repeat-days groups along each.
CHECK_ORDER = (ltv.HOLDOUT, ltv.PLANTED)
FREQUENCY_GROUP_ORDER = ltv.FREQUENCY_GROUPS


def lifetime_checks(calibration: pd.DataFrame) -> pd.DataFrame:
    """The calibration table by check, then by repeat-days group in numeric order ("6+"
    last: as text it sorts before "7")."""
    check = calibration["check"].map({c: i for i, c in enumerate(CHECK_ORDER)})
    group = calibration["group"].map({g: i for i, g in enumerate(FREQUENCY_GROUP_ORDER)})
    return (
        calibration.assign(_check=check, _group=group)
        .sort_values(["_check", "_group"])
        .drop(columns=["_check", "_group"])
        .reset_index(drop=True)
    )
