"""Assemble the report: charts from the marts, sentences from insights.json, one HTML page."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import pandas as pd

from hotmart_spark.report import charts, fed, story
from hotmart_spark.report.story import amount, count, pct
from hotmart_spark.transforms.ranking import top_count

# The marts the report reads: all small by construction.
MARTS = (
    "pareto",
    "weekday_hour",
    "breakdowns",
    "channels",
    "rfm_segments",
    "lifetime_calibration",
    "lifetime_summary",
    "producer_cluster_profiles",
    "product_drivers",
    "product_effects",
    "forecast_monthly",
    "forecast_backtest",
)
# The breakdowns drawn as bars, and how many levels of each.
BREAKDOWNS_DRAWN = ("category", "niche")
TOP_LEVELS_DRAWN = 12
# insights.json sections the report needs.
SECTIONS = ("run", "producers", "trends", "segments", "drivers", "forecast")
QUESTIONS = {
    "producers": "Does the platform depend on its biggest producers?",
    "trends": "What patterns and trends does the data show?",
    "segments": "Which segments do buyers and producers form?",
    "drivers": "What makes a product sell more?",
    "forecast": "How much will the next three months bring?",
}


@dataclass(frozen=True)
class Report:
    html: str
    charts: dict[str, bytes]  # chart name -> PNG


@dataclass(frozen=True)
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]


def build_charts(
    insights: dict[str, Any], marts: dict[str, pd.DataFrame], answered: set[str]
) -> dict[str, bytes]:
    """The charts of the answered sections."""
    unit = insights["run"]["value_unit"]
    builders: dict[str, dict[str, Callable[[], bytes]]] = {
        "producers": {
            "pareto": lambda: charts.pareto(
                fed.lorenz_points(marts["pareto"]),
                {float(k): v for k, v in insights["producers"]["top_share_by_revenue"].items()},
            ),
        },
        "trends": {
            "monthly_value": lambda: charts.monthly_value(
                fed.in_month_order(pd.DataFrame(insights["trends"]["monthly"])), unit
            ),
            "categories": lambda: charts.breakdown_bars(
                fed.top_levels(marts["breakdowns"], BREAKDOWNS_DRAWN, TOP_LEVELS_DRAWN),
                BREAKDOWNS_DRAWN,
            ),
            "channels": lambda: charts.share_pairs(
                fed.largest_first(marts["channels"], "value_share", "channel"),
                "channel",
                ("units_share", "share of units"),
                ("value_share", "share of value"),
                "Affiliate against direct sales",
            ),
        },
        "segments": {
            "rfm_segments": lambda: charts.share_pairs(
                fed.largest_first(marts["rfm_segments"], "value_share", "segment"),
                "segment",
                ("buyer_share", "share of buyers"),
                ("value_share", "share of value"),
                "Buyer segments: how many, and how much they bring",
            ),
            "buyer_lifetime": lambda: charts.lifetime_calibration(
                fed.lifetime_checks(marts["lifetime_calibration"])
            ),
            "producer_clusters": lambda: charts.share_pairs(
                fed.largest_first(marts["producer_cluster_profiles"], "value_share", "label"),
                "label",
                ("producer_share", "share of producers"),
                ("value_share", "share of value"),
                "Producer clusters",
            ),
        },
        "drivers": {
            "drivers": lambda: charts.drivers(
                fed.importance_by_group(marts["product_drivers"]),
                fed.estimates_by_role(marts["product_effects"]),
                planted_effect(insights),
            ),
        },
        "forecast": {
            "monthly_forecast": lambda: charts.monthly_forecast(
                fed.in_month_order(marts["forecast_monthly"]),
                fed.best_first(
                    fed.scored_backtest(
                        marts["forecast_backtest"], insights["forecast"]["backtest_half"]
                    )
                ),
                unit,
                story.simulated_months(insights["run"]),
            ),
        },
    }
    if "segments" in answered and "skipped" in (insights["segments"].get("lifetime") or {}):
        del builders["segments"]["buyer_lifetime"]
    # A log stamped by day has every row at one clock time: an hour chart would show that.
    if not day_only(insights):
        builders["trends"]["weekday_hour"] = lambda: charts.weekday_hour(
            fed.weekday_hour_grid(marts["weekday_hour"]), unit
        )
    return {
        name: build()
        for section, section_charts in builders.items()
        if section in answered
        for name, build in section_charts.items()
    }


def planted_effect(insights: dict[str, Any]) -> float | None:
    """The programme effect the generator planted, or None for data it did not make."""
    truth = insights["run"].get("planted")
    return None if truth is None else truth["programme_effect"]["log_ratio"]


def day_only(insights: dict[str, Any]) -> bool:
    return bool(insights["run"].get("day_only_timestamps"))


def _tables(
    insights: dict[str, Any], marts: dict[str, pd.DataFrame], answered: set[str]
) -> dict[str, list[Table]]:
    """The tables of the answered sections."""
    builders = {
        "producers": _producer_tables,
        "trends": _trend_tables,
        "segments": _segment_tables,
        "drivers": _driver_tables,
        "forecast": _forecast_tables,
    }
    return {
        section: build(insights, marts) if section in answered else []
        for section, build in builders.items()
    }


def _producer_tables(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    p = insights["producers"]
    n = p["n_producers"]
    units = p["top_share_by_units"]
    level = f"{p['interval_level']:.0%}"
    top = Table(
        "The top producers' share of value (ranked by value) and of units (ranked by units), "
        f"with {level} bootstrap intervals (resampling producers)",
        [
            "top",
            "producers",
            "share of value",
            f"{level} interval",
            "share of units",
            f"{level} interval",
        ],
        [
            [
                f"{float(k):.0%}",
                count(top_count(n, float(k))),
                pct(v),
                story.share_interval(p["top_share_by_revenue_interval"][k]),
                pct(units[k]),
                story.share_interval(p["top_share_by_units_interval"][k]),
            ]
            for k, v in sorted(p["top_share_by_revenue"].items(), key=lambda kv: float(kv[0]))
        ],
    )
    persistence = Table(
        "Do the top 5% of producers stay on top? Of each month's top 5%, how many were in the "
        "next month's, against a random pick of that month's producers",
        [
            "month",
            "top 5% the month before",
            "still top 5%",
            "kept",
            "random pick would keep",
            "their share of the month's value",
        ],
        [
            [
                r["month"],
                count(r["top_previous"]),
                count(r["stayed_top"]),
                pct(r["persistence"]),
                pct(r["chance"]),
                pct(r["previous_top_value_share"]),
            ]
            for r in p["top_persistence"]
        ],
    )
    return [top, persistence] if p["top_persistence"] else [top]


def _trend_tables(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    unit = insights["run"]["value_unit"]
    monthly = Table(
        f"Monthly value ({unit}), units and buyers; growth on the month before, in all and "
        "per day (months differ in length); the period's first month counts every buyer as "
        "new (censored: purchases before the period are not seen)",
        ["month", "value", "units", "buyers", "new buyers", "growth", "growth per day"],
        [
            [
                m["month"],
                amount(m["value"]),
                count(m["units"]),
                count(m["buyers"]),
                count(m["new_buyers"]) + (" (censored)" if m["new_buyers_censored"] else ""),
                "" if m["growth"] is None else story.signed_pct(m["growth"], 1),
                "" if m["growth_per_day"] is None else story.signed_pct(m["growth_per_day"], 1),
            ]
            for m in insights["trends"]["monthly"]
        ],
    )
    return [monthly]


def _segment_tables(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    sg = insights["segments"]
    rfm = Table(
        "Buyer segments; the categories each buys most against buyers overall (lift: the "
        "category's share of the segment's purchases over its share of all purchases)",
        ["segment", "buyers", "share of buyers", "share of value", "mean purchases", "lift"],
        [
            [
                r["segment"],
                count(r["buyers"]),
                pct(r["buyer_share"]),
                pct(r["value_share"]),
                f"{r['mean_frequency']:.1f}",
                story.lifts(r),
            ]
            for r in sorted(sg["rfm"], key=lambda r: -r["value_share"])
        ],
    )
    categories = sg["cluster_categories"]
    profiles = marts["producer_cluster_profiles"].sort_values("value_share", ascending=False)
    clusters = Table(
        f"Producer clusters (medians per producer; value per sale in {sg['value_unit']})",
        [
            "cluster",
            "producers",
            "share of value",
            "units",
            "value per sale",
            "affiliate share",
            *[f"share in {name}" for name in categories],
            "growth index",
        ],
        [
            [
                r.label,
                count(r.producers),
                pct(r.value_share),
                count(r.median_units),
                amount(r.median_avg_value_per_sale),
                pct(r.median_affiliate_units_share),
                *[
                    pct(getattr(r, f"median_category_share_{i + 1}"))
                    for i in range(len(categories))
                ],
                f"{r.median_growth_index:+.2f}",
            ]
            for r in profiles.itertuples()
        ],
    )
    return [rfm, *_lifetime_tables(sg, marts), clusters]


def _lifetime_tables(sg: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    """Expected purchase days and value over the horizon by RFM segment, and the buyers by
    P(alive) against expected value."""
    lifetime = sg.get("lifetime") or {}
    if "skipped" in lifetime or "lifetime_summary" not in marts:
        return []
    summary = marts["lifetime_summary"]
    horizon = f"next {lifetime['horizon_months']} months"
    columns = ["buyers", "mean P(alive)", f"purchase days, {horizon}", "share of expected value"]

    def rows(view: str, extra: bool = False) -> list[list[str]]:
        part = summary[summary["view"] == view].sort_values("rank")
        return [
            [
                r.group,
                *([r.top_segment or ""] if extra else []),
                count(r.buyers),
                f"{r.mean_p_alive:.2f}",
                count(r.expected_purchase_days),
                pct(r.value_share),
            ]
            for r in part.itertuples()
        ]

    return [
        Table(
            f"Buyer segments' expected purchases ({horizon}, BG/NBD and Gamma-Gamma)",
            ["segment", *columns],
            rows("segment"),
        ),
        Table(
            "Buyers by probability of being alive and expected value (above or at most the "
            "median), with the RFM segment most of them are in",
            ["group", "most in segment", *columns],
            rows("alive_value", extra=True),
        ),
    ]


def _driver_tables(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    drivers = Table(
        "Product features: rank correlation with units (95% interval) and importance in the "
        "model (of the feature's group, shuffled together)",
        ["feature", "group", "Spearman", "group permutation importance", "impurity importance"],
        [
            [
                r.feature,
                r.group,
                ""
                if pd.isna(r.spearman)
                else f"{r.spearman:+.3f} ({r.spearman_low:+.3f} to {r.spearman_high:+.3f})",
                ""
                if pd.isna(r.permutation_importance)
                else f"{r.permutation_importance:+.4f} ± {r.permutation_importance_sd:.4f}",
                "" if pd.isna(r.impurity_importance) else f"{r.impurity_importance:.3f}",
            ]
            for r in marts["product_drivers"].itertuples()
        ],
    )
    estimates = Table(
        "Affiliate programme: every estimate (log ratio of expected sales per day on sale)",
        ["method", "role", "log ratio", "95% interval", "change in sales", "note"],
        [
            [
                e["method"],
                e["role"],
                "" if e["estimate"] is None else f"{e['estimate']:+.3f}",
                ""
                if e["estimate"] is None
                else f"{story.ratio_bound(e['ci_low'], '-inf')} to "
                f"{story.ratio_bound(e['ci_high'], '+inf')}",
                "" if e["units_change"] is None else story.signed_pct(e["units_change"]),
                e["note"],
            ]
            for e in insights["drivers"]["effects"]
        ],
    )
    balance = sorted(insights["drivers"]["balance"], key=lambda r: -abs(r["smd_raw"]))
    balance_table = Table(
        "Covariate balance, programme seen against not (standardised mean difference), "
        "the 10 least balanced before weighting",
        ["covariate", "before weighting", "after weighting"],
        [
            [r["covariate"], f"{r['smd_raw']:+.3f}", f"{r['smd_weighted']:+.3f}"]
            for r in balance[:10]
        ],
    )
    return [drivers, estimates, balance_table] if balance else [drivers, estimates]


def _forecast_tables(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> list[Table]:
    unit = insights["run"]["value_unit"]
    f = insights["forecast"]
    total = f["total"]
    ahead = Table(
        f"Forecast ({unit}) by {f['model']}",
        ["month", "value", "80% interval", "95% interval", "platform revenue"],
        [
            [
                m["month"],
                amount(m["value"]),
                story.interval(m["lo80"], m["hi80"]),
                story.interval(m["lo95"], m["hi95"]),
                amount(m["platform_revenue"]),
            ]
            for m in f["months"]
        ]
        + [
            [
                f"the {total['months']} months",
                amount(total["mean"]),
                story.interval(total["lo80"], total["hi80"]),
                story.interval(total["lo95"], total["hi95"]),
                amount(sum(m["platform_revenue"] for m in f["months"])),
            ]
        ],
    )
    scored = (
        "later origins, unseen by the choice"
        if f["backtest_half"] == "evaluation"
        else ("the origins the model was chosen on")
    )
    backtest = Table(
        f"Backtest on the {scored}: error of 30-day months, and how often the intervals held",
        ["model", "months", "MAPE", "MAE", "80% held", "95% held"],
        [
            [
                r["model"] + (" (chosen)" if r["model"] == f["model"] else ""),
                str(r["n"]),
                f"{r['mape']:.1f}%",
                amount(r["mae"]),
                "" if r["coverage80"] is None else pct(r["coverage80"], 0),
                "" if r["coverage95"] is None else pct(r["coverage95"], 0),
            ]
            for r in sorted(f["backtest"], key=lambda r: r["mae"])
        ],
    )
    return [ahead, backtest, *_series_tables(f.get("series", {}), unit)]


def _series_tables(groupings: dict[str, Any], unit: str) -> list[Table]:
    tables = []
    for column, g in groupings.items():
        if "skipped" in g:
            continue
        name = story.GROUPING_NAMES.get(column, column)
        months = [m["month"] for m in g["series"][0]["months"]]
        tables.append(
            Table(
                f"Forecast per {name} ({unit}), reconciled by {g['method']}: the rows add up "
                "to the first",
                [
                    "series",
                    "share of value",
                    "model",
                    *months,
                    "together (95% interval)",
                    "95% held",
                ],
                [
                    [
                        s["series"],
                        pct(s["share"], 1),
                        s["model"],
                        *(amount(m["value"]) for m in s["months"]),
                        f"{amount(s['total']['value'])} "
                        f"({story.interval(s['total']['lo95'], s['total']['hi95'])})",
                        "" if s["coverage95"] is None else pct(s["coverage95"], 0),
                    ]
                    for s in g["series"]
                ],
            )
        )
    return tables


def answered(insights: dict[str, Any]) -> set[str]:
    """The questions whose stage ran; a skipped one's section holds only why."""
    return {key for key in QUESTIONS if "not_answered" not in insights[key]}


def build_report(insights: dict[str, Any], marts: dict[str, pd.DataFrame]) -> Report:
    """The page and its charts from insights.json and the marts of the answered questions."""
    done = answered(insights)
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        "producers": lambda: story.producers(insights["producers"]),
        "trends": lambda: story.trends(
            insights["trends"], marts["breakdowns"], marts["weekday_hour"], day_only(insights)
        ),
        "segments": lambda: story.segments(insights["segments"]),
        "drivers": lambda: story.drivers(insights["drivers"]),
        "forecast": lambda: story.forecast(insights["forecast"]),
    }
    stories = {
        key: build()
        if key in done
        else {"answer": f"Not answered: {insights[key]['not_answered']}.", "details": []}
        for key, build in builders.items()
    }
    section_charts = {
        "producers": ["pareto"],
        "trends": ["monthly_value", "weekday_hour", "categories", "channels"],
        "segments": ["rfm_segments", "buyer_lifetime", "producer_clusters"],
        "drivers": ["drivers"],
        "forecast": ["monthly_forecast"],
    }
    pngs = build_charts(insights, marts, done)
    truth = story.planted(
        insights["run"],
        insights["drivers"] if "drivers" in done else None,
        insights["forecast"] if "forecast" in done else None,
        insights["segments"] if "segments" in done else None,
    )
    tables = _tables(insights, marts, done)
    run = insights["run"]
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        resources.files("hotmart_spark.report").joinpath("report.html.j2").read_text("utf-8")
    )
    html = template.render(
        title="Marketplace purchases: five questions answered",
        subtitle=(
            f"{count(run['rows_clean'])} clean purchases from {run['period_start']} to "
            f"{run['period_end']}; values in {run['value_unit']}. Built "
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by hotmart-spark."
        ),
        summary=[
            {"question": QUESTIONS[key], "answer": stories[key]["answer"]} for key in QUESTIONS
        ],
        planted=truth,
        sections=[
            {
                "id": key,
                "question": QUESTIONS[key],
                "answer": stories[key]["answer"],
                "details": stories[key]["details"],
                "charts": [name for name in section_charts[key] if name in pngs],
                "tables": tables[key],
            }
            for key in QUESTIONS
        ],
        charts={name: base64.b64encode(data).decode("ascii") for name, data in pngs.items()},
        quality=story.quality(run),
        quarantine=[
            (rule, count(n))
            for rule, n in sorted(run["quarantine_by_rule"].items(), key=lambda kv: -kv[1])
        ],
        caveats=story.caveats(run, done),
    )
    return Report(html, pngs)
