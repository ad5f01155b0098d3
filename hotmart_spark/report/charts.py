"""The report's charts: matplotlib on the small marts, one style, units on every axis."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from hotmart_spark.analysis import lifetime as ltv

MAIN = "#1f5f8b"
ACCENT = "#d1495b"
MUTED = "#9aa5b1"
LIGHT = "#c9dcec"
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e8eb",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "legend.frameon": False,
}
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
thousands = FuncFormatter(lambda x, _: f"{x:,.0f}")
share = PercentFormatter(xmax=1.0, decimals=0)


def share_axis(axis: Axis) -> None:
    """Shares as whole percents, ticks on whole percents: Matplotlib's default steps of 2.5
    would print 2.5% as "2%"."""
    axis.set_major_locator(MaxNLocator(steps=[1, 2, 5, 10]))
    axis.set_major_formatter(share)


@contextmanager
def figure(width: float = 9.0, height: float = 4.2, ncols: int = 1) -> Iterator[Figure]:
    """A figure in the report's style, closed after use so long runs do not pile them up."""
    with plt.rc_context(STYLE):
        fig, _ = plt.subplots(1, ncols, figsize=(width, height), layout="constrained")
        try:
            yield fig
        finally:
            plt.close(fig)


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def pareto(curve: pd.DataFrame, top_shares: dict[float, float]) -> bytes:
    """Share of value against share of producers, from the biggest down, with the top cuts
    (curve: fed.lorenz_points)."""
    with figure(7.5, 4.6) as fig:
        ax = fig.axes[0]
        ax.plot(curve["producer_share"], curve["revenue_share"], color=MAIN, lw=2.2)
        ax.plot([0, 1], [0, 1], color=MUTED, ls="--", lw=1, label="every producer equal")
        for k, value in sorted(top_shares.items()):
            ax.plot([k, k], [0, value], color=ACCENT, lw=1, ls=":")
            ax.plot(k, value, "o", color=ACCENT)
            ax.annotate(
                f"top {k:.0%}: {value:.0%}",
                (k, value),
                xytext=(8, -14),
                textcoords="offset points",
                fontsize=9,
            )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.02),
            xlabel="share of producers, biggest first",
            ylabel="share of value",
            title="How much of the value the biggest producers make",
        )
        share_axis(ax.xaxis)
        share_axis(ax.yaxis)
        ax.legend(loc="lower right")
        return png(fig)


def monthly_forecast(
    monthly: pd.DataFrame,
    backtest: pd.DataFrame,
    unit: str,
    simulated: dict[str, float] | None = None,
) -> bytes:
    """Monthly value with the forecast fan (80 and 95%), and each model's backtest error
    (with the months the generator simulated past the period, for a generated input)."""
    with figure(11, 4.4, ncols=2) as fig:
        ax, errors = fig.axes
        actual = monthly[monthly["kind"] == "actual"]
        ahead = monthly[monthly["kind"] == "forecast"]
        x_actual = np.arange(len(actual))
        x_ahead = np.arange(len(actual), len(actual) + len(ahead))
        ax.plot(x_actual, actual["value"], "o-", color=MAIN, lw=2, label="actual")
        # The fan starts at the last actual month so the forecast reads as its continuation.
        fan_x = np.concatenate([[x_actual[-1]], x_ahead])
        last = actual["value"].iloc[-1]
        for low, high, alpha, name in (
            ("lo95", "hi95", 0.18, "95%"),
            ("lo80", "hi80", 0.35, "80%"),
        ):
            ax.fill_between(
                fan_x,
                np.concatenate([[last], ahead[low]]),
                np.concatenate([[last], ahead[high]]),
                color=ACCENT,
                alpha=alpha,
                lw=0,
                label=f"{name} interval",
            )
        ax.plot(
            fan_x,
            np.concatenate([[last], ahead["value"]]),
            "o--",
            color=ACCENT,
            lw=2,
            label="forecast",
        )
        if simulated:
            shown = [
                (x, simulated[m])
                for x, m in zip(x_ahead, ahead["month"], strict=True)
                if m in simulated
            ]
            ax.plot(
                [x for x, _ in shown],
                [v for _, v in shown],
                "D",
                color=MAIN,
                mfc="white",
                mew=2,
                label="simulated (planted)",
            )
        ax.set_xticks(np.concatenate([x_actual, x_ahead]))
        ax.set_xticklabels(list(actual["month"]) + list(ahead["month"]), rotation=45, ha="right")
        ax.set(ylabel=f"value ({unit})", title="Monthly value and the next three months")
        ax.yaxis.set_major_formatter(thousands)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower left", fontsize=8)

        ranked = backtest.iloc[::-1]
        colours = [
            ACCENT if c else (MUTED if m.startswith(("naive", "seasonal")) else MAIN)
            for m, c in zip(ranked["model"], ranked["chosen"], strict=True)
        ]
        errors.barh(ranked["model"], ranked["mape"], color=colours)
        for y, value in enumerate(ranked["mape"]):
            errors.annotate(
                f"{value:.1f}%",
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        errors.set(
            xlabel="MAPE of 30-day totals, later backtest origins (%)",
            title="Backtest error (red: chosen; grey: naive)",
        )
        errors.grid(axis="y", visible=False)
        return png(fig)


def monthly_value(monthly: pd.DataFrame, unit: str) -> bytes:
    """Value per calendar month with its change on the month before."""
    with figure(9, 3.8) as fig:
        ax = fig.axes[0]
        x = np.arange(len(monthly))
        ax.bar(x, monthly["value"], color=MAIN)
        for i, growth in enumerate(monthly["growth"]):
            if pd.notna(growth):
                ax.annotate(
                    f"{growth:+.0%}",
                    (i, monthly["value"].iloc[i]),
                    xytext=(0, 3),
                    textcoords="offset points",
                    ha="center",
                    fontsize=9,
                )
        ax.set_xticks(x, monthly["month"])
        ax.set(ylabel=f"value ({unit})", title="Value per month and its change on the month before")
        ax.yaxis.set_major_formatter(thousands)
        ax.grid(axis="x", visible=False)
        return png(fig)


def weekday_hour(grid: pd.DataFrame, unit: str) -> bytes:
    """Value by weekday and hour of day (grid: fed.weekday_hour_grid)."""
    with figure(11, 3.6) as fig:
        ax = fig.axes[0]
        image = ax.imshow(grid.to_numpy(), aspect="auto", cmap="Blues")
        ax.set_yticks(range(7), WEEKDAYS)
        ax.set_xticks(range(24))
        ax.set(xlabel="hour of day (as stored)", title="When the value comes in")
        ax.grid(False)
        fig.colorbar(image, ax=ax, label=f"value ({unit})", format=thousands)
        return png(fig)


def breakdown_bars(levels: pd.DataFrame, dimensions: tuple[str, ...]) -> bytes:
    """Share of value per level of each dimension, the first row on top (levels:
    fed.top_levels)."""
    with figure(11, 4.6, ncols=len(dimensions)) as fig:
        for ax, dimension in zip(fig.axes, dimensions, strict=True):
            rows = levels[levels["dimension"] == dimension].iloc[::-1]
            ax.barh(rows["level"], rows["value_share"], color=MAIN)
            share_axis(ax.xaxis)
            ax.set(xlabel="share of value", title=f"Value by {dimension.replace('_', ' ')}")
            ax.grid(axis="y", visible=False)
        return png(fig)


def share_pairs(
    table: pd.DataFrame, label: str, first: tuple[str, str], second: tuple[str, str], title: str
) -> bytes:
    """Two shares side by side per row (for example buyers and value per segment), the first
    row on top."""
    rows = table.iloc[::-1]
    y = np.arange(len(rows))
    with figure(9, max(2.6, 0.45 * len(rows) + 1.2)) as fig:
        ax = fig.axes[0]
        ax.barh(y + 0.2, rows[first[0]], height=0.4, color=MUTED, label=first[1])
        ax.barh(y - 0.2, rows[second[0]], height=0.4, color=MAIN, label=second[1])
        ax.set_yticks(y, rows[label])
        share_axis(ax.xaxis)
        ax.set(xlabel="share", title=title)
        ax.grid(axis="y", visible=False)
        # Below the axes: inside, the longest bars can run under it.
        fig.legend(loc="outside lower center", ncol=2)
        return png(fig)


def drivers(groups: pd.DataFrame, effects: pd.DataFrame, planted: float | None = None) -> bytes:
    """Permutation importance per feature group, and the affiliate programme's effect estimates
    (with the planted value, for a generated input), the first row of each on top (groups:
    fed.importance_by_group, effects: fed.estimates_by_role)."""
    with figure(12, 5.2, ncols=2) as fig:
        bars, estimates = fig.axes
        rows = groups.iloc[::-1]
        bars.barh(
            rows["group"],
            rows["permutation_importance"],
            xerr=rows["permutation_importance_sd"],
            color=MAIN,
            ecolor=MUTED,
        )
        bars.axvline(0, color="black", lw=0.8)
        bars.set(xlabel="drop in holdout R² when shuffled", title="Feature importance")
        bars.grid(axis="y", visible=False)
        known = effects.iloc[::-1]
        if known.empty:
            estimates.text(0.5, 0.5, "no estimate", ha="center", va="center")
            estimates.set_axis_off()
            return png(fig)
        y = np.arange(len(known))
        centre = known["estimate"].to_numpy()
        # A dilution-corrected bound can have no finite value: the bar runs to the plot's
        # edge and ends in an arrow.
        finite = np.concatenate([centre, known[["ci_low", "ci_high"]].stack().to_numpy()])
        edge_low, edge_high = finite.min() - 0.3, finite.max() + 0.3
        low = known["ci_low"].fillna(edge_low).to_numpy()
        high = known["ci_high"].fillna(edge_high).to_numpy()
        estimates.errorbar(
            centre, y, xerr=[centre - low, high - centre], fmt="o", color=ACCENT, capsize=4
        )
        for row, (lo, hi) in enumerate(zip(known["ci_low"], known["ci_high"], strict=True)):
            if pd.isna(lo):
                estimates.plot(edge_low, row, marker="<", color=ACCENT)
            if pd.isna(hi):
                estimates.plot(edge_high, row, marker=">", color=ACCENT)
        estimates.axvline(0, color="black", lw=0.8)
        if planted is not None:
            estimates.axvline(planted, color=MUTED, ls="--", lw=1.2, label="planted")
            estimates.legend(loc="lower right")
        estimates.set_yticks(y, [textwrap.fill(m, 30) for m in known["method"]], fontsize=8)
        estimates.set(
            xlabel="log ratio of expected sales per day on sale, 95% interval",
            title="Affiliate programme effect",
        )
        estimates.grid(axis="y", visible=False)
        estimates.set_ylim(-0.6, len(known) - 0.4)
        estimates.set_xlim(edge_low - 0.05, edge_high + 0.05)
        return png(fig)


def lifetime_calibration(checks: pd.DataFrame) -> bytes:
    """Predicted against actual purchase days per buyer, by repeat days in the fitting
    window: one panel per check (the period's last months held out; for a generated input,
    the months simulated past it), groups in order (fed.lifetime_checks)."""
    names = list(dict.fromkeys(checks["check"]))
    titles = {
        ltv.HOLDOUT: "Last months held out: fitted before, scored on them",
        ltv.PLANTED: "Months simulated past the period (generated input)",
    }
    with figure(6 * len(names), 4.2, ncols=len(names)) as fig:
        for ax, name in zip(fig.axes, names, strict=True):
            rows = checks[checks["check"] == name]
            x = np.arange(len(rows))
            ax.bar(x - 0.2, rows["actual_per_buyer"], width=0.4, color=MUTED, label="actual")
            ax.bar(x + 0.2, rows["predicted_per_buyer"], width=0.4, color=MAIN, label="predicted")
            ax.set_xticks(x, rows["group"])
            ax.set(
                xlabel="repeat purchase days while fitted",
                ylabel="purchase days per buyer",
                title=titles.get(name, name),
            )
            ax.grid(axis="x", visible=False)
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
        return png(fig)
