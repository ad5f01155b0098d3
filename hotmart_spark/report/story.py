"""The report's words: every sentence is built from insights.json and the marts, no number is
written by hand."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from hotmart_spark.transforms.ranking import top_count

WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NAIVE = ("naive_last_month", "naive_mean_3_months", "seasonal_naive_weekly")


def _unsigned_zero(x: float, digits: int) -> float:
    """x rounded to `digits`, with a negative zero made positive: a score of -0.001 reads
    '0.00', not '-0.00'."""
    return round(x, digits) + 0.0


def score(x: float) -> str:
    """A coefficient (R², Gini) to two decimals: -0.004 -> '0.00', -0.08 -> '-0.08'."""
    return f"{_unsigned_zero(x, 2):.2f}"


def count(n: float) -> str:
    """1590315 -> '1,590,315'."""
    return f"{n:,.0f}"


def pct(x: float, digits: int = 1) -> str:
    """0.6387 -> '63.9%'."""
    return f"{_unsigned_zero(100 * x, digits):.{digits}f}%"


def signed_pct(x: float, digits: int = 0) -> str:
    """0.13 -> '+13%'."""
    return f"{_unsigned_zero(100 * x, digits):+.{digits}f}%"


def amount(x: float) -> str:
    """A value in the report's unit, rounded to whole units with thousands separators."""
    return f"{x:,.0f}"


def month_name(month: str) -> str:
    """'2016-03' -> 'March 2016'."""
    return pd.Period(month, "M").strftime("%B %Y")


def producers(p: dict[str, Any]) -> dict[str, Any]:
    """Q1: concentration of value among producers."""
    top = p["top_share_by_revenue"]
    n = p["n_producers"]
    top5 = top["0.05"]
    verdict = "Yes, heavily" if top5 >= 0.5 else ("Partly" if top5 >= 0.25 else "Hardly")
    answer = (
        f"{verdict}: the top 5% of producers ({count(top_count(n, 0.05))} of {count(n)}) made "
        f"{pct(top5)} of the value, and the {count(p['n_top'])} producers selling more than the "
        f"95th percentile of units ({count(p['p95_units'])}) made {pct(p['top_revenue_share'])}."
    )
    risk = p["revenue_at_risk"]
    details = [
        f"The top 1%, 10% and 20% of producers by value made {pct(top['0.01'])}, "
        f"{pct(top['0.1'])} and {pct(top['0.2'])} of it. The Gini coefficient of producer value "
        f"is {score(p['gini'])} (0: all equal, 1: one producer makes everything); the HHI is "
        f"{p['hhi']:.4f}, far from a monopoly because the value is spread over many producers.",
        f"If the single biggest producer left, {pct(risk['1'])} of the value would go with it; "
        f"the top 10 hold {pct(risk['10'])} and the top 50 {pct(risk['50'])}.",
        f"Affiliates sold {pct(p['affiliate_units_share'])} of units and "
        f"{pct(p['affiliate_value_share'])} of value; the rest was sold directly.",
    ]
    return {"answer": answer, "details": details}


def trends(
    t: dict[str, Any], breakdowns: pd.DataFrame, weekday_hour: pd.DataFrame, day_only: bool
) -> dict[str, Any]:
    """Q2: time, category, niche, device, origin, social networks, channel."""
    monthly = pd.DataFrame(t["monthly"])
    low, high = monthly.loc[monthly["value"].idxmin()], monthly.loc[monthly["value"].idxmax()]

    def top(dimension: str) -> pd.Series:
        rows = breakdowns[breakdowns["dimension"] == dimension]
        return rows.loc[rows["value_share"].idxmax()]

    category, niche, device = top("category"), top("niche"), top("device")
    social = breakdowns[
        (breakdowns["dimension"] == "social_network") & (breakdowns["level"] == "social network")
    ]
    social_share = float(social["value_share"].sum())
    busiest = weekday_hour.loc[weekday_hour["value"].idxmax()]
    by_weekday = weekday_hour.groupby("weekday")["value"].sum()
    answer = (
        f"Monthly value ranged from {amount(low['value'])} in {month_name(low['month'])} to "
        f"{amount(high['value'])} in {month_name(high['month'])}; {category['level']} made "
        f"{pct(category['value_share'])} of the value and social networks referred "
        f"{pct(social_share)} of it."
    )
    growth = [
        f"{month_name(r['month'])} {signed_pct(r['growth'], 1)}"
        for r in t["monthly"]
        if r["growth"] is not None
    ]
    details = [
        "Month on month: " + ", ".join(growth) + ".",
        f"The largest niche is {niche['level']} ({pct(niche['value_share'])} of the value); "
        f"the largest device is {device['level']} ({pct(device['value_share'])}).",
        (
            "The timestamps carry the day only, so no hour of the day is reported; "
            if day_only
            else f"The busiest hour of the week is {WEEKDAY_NAMES[int(busiest['weekday']) - 1]} "
            f"at {int(busiest['hour'])}:00; "
        )
        + "the strongest weekday is "
        f"{WEEKDAY_NAMES[int(by_weekday.idxmax()) - 1]} and the weakest "
        f"{WEEKDAY_NAMES[int(by_weekday.idxmin()) - 1]} "
        f"({pct(by_weekday.min() / by_weekday.max() - 1)} against the strongest).",
    ]
    return {"answer": answer, "details": details}


def segments(sg: dict[str, Any]) -> dict[str, Any]:
    """Q3: buyer RFM segments and producer clusters."""
    rfm = sorted(sg["rfm"], key=lambda r: r["value_share"], reverse=True)
    first, second = rfm[0], rfm[1] if len(rfm) > 1 else rfm[0]
    clusters = sorted(sg["producer_clusters"], key=lambda c: c["value_share"], reverse=True)
    biggest = clusters[0]
    producers_total = sum(c["producers"] for c in clusters)
    answer = (
        f"{first['segment']} and {second['segment']} buyers are "
        f"{pct(first['buyer_share'] + second['buyer_share'])} of buyers and bring "
        f"{pct(first['value_share'] + second['value_share'])} of the value; producers form "
        f"{len(clusters)} clusters, and the '{biggest['label']}' one "
        f"({pct(biggest['producers'] / producers_total)} of producers) holds "
        f"{pct(biggest['value_share'])} of the value."
    )
    cuts = sg["rfm_cuts"]
    details = [
        f"Buyers are scored 1 to 5 on recency (days since their last purchase, before "
        f"{sg['reference_day']}), frequency and monetary value by quintile cut points (recency "
        f"{', '.join(count(c) for c in cuts['recency'])} days; frequency "
        f"{', '.join(count(c) for c in cuts['frequency'])} purchases) and named by their "
        "recency and frequency scores.",
        f"Producer clusters: k-means on scaled producer features, k = {sg['clusters_k']} chosen "
        "by silhouette; each label is read off the cluster's profile.",
    ]
    return {"answer": answer, "details": details}


def drivers(d: dict[str, Any]) -> dict[str, Any]:
    """Q4: what makes a product sell more."""
    model, effect = d["model"], d["effect"]
    if model["note"]:
        finding = f"The model was not fitted: {model['note']}."
    elif model["holdout_r2"] > max(model["baseline_r2"], 0.0) + 0.02:
        best = d["features"][0]["feature"]
        finding = (
            f"On held-out products the model explains {pct(model['holdout_r2'], 0)} of the "
            f"variation in log units (category-niche median: {score(model['baseline_r2'])}); the "
            f"feature it leans on most is {best}."
        )
    else:
        finding = (
            f"No product feature predicts sales here: on held-out products the model's R² is "
            f"{score(model['holdout_r2'])}, no better than the category-niche median "
            f"({score(model['baseline_r2'])})."
        )
    if effect["estimate"] is None:
        lever = f"The affiliate programme's effect could not be estimated ({effect['note']})."
    else:
        lever = (
            f"Products with an affiliate programme sold {signed_pct(effect['units_change'])} "
            f"units (95% interval {signed_pct(math.expm1(effect['ci_low']))} to "
            f"{signed_pct(math.expm1(effect['ci_high']))}, observational)."
        )
    details = [
        f"{model['products_modelled']:,} of {model['products']:,} products have "
        f"{d['early_sales']} sales to describe them; their features come from those first "
        "sales so that they do not grow with the volume they are meant to explain.",
        f"Importance is {model['importance']}; the trees' own impurity importance, which "
        "favours features with many levels, is in the table beside it.",
    ]
    details += [
        f"{e['method']}: {e['estimate']:+.3f} log units [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
        if e["estimate"] is not None
        else f"{e['method']}: {e['note']}"
        for e in d["effects"]
    ]
    return {"answer": f"{finding} {lever}", "details": details}


def forecast(f: dict[str, Any], backtest: pd.DataFrame) -> dict[str, Any]:
    """Q5: the next three months."""
    months = f["months"]
    total = sum(m["value"] for m in months)
    platform = sum(m["platform_revenue"] for m in months)
    first = months[0]
    chosen = backtest[backtest["model"] == f["model"]].iloc[0] if len(backtest) else None
    answer = (
        f"{month_name(months[0]['month'])} to {month_name(months[-1]['month'])} should bring "
        f"about {amount(total)} of value ({amount(platform)} platform revenue): "
        + ", ".join(f"{amount(m['value'])}" for m in months)
        + f" a month ({month_name(first['month'])} 80% interval {amount(first['lo80'])} to "
        f"{amount(first['hi80'])})."
    )
    gains = f["improvement_over_baselines"]
    if chosen is None:
        comparison = f"The model is {f['model']}, untested: {'; '.join(f['notes'])}."
    elif f["model"] in NAIVE:
        comparison = (
            f"The chosen model is the naive baseline {f['model']}: no statistical model beat it in the "
            f"backtest (its MAPE {chosen['mape']:.1f}% over {int(chosen['n'])} months)."
        )
    else:
        best = max((g for name, g in gains.items() if name != f["model"]), default=0.0)
        comparison = (
            f"The chosen model, {f['model']}, had a backtest MAPE of {chosen['mape']:.1f}% over "
            f"{int(chosen['n'])} months, {pct(best, 0)} less error than the best naive baseline."
        )
    details = [
        comparison,
        f"Backtest origins: {', '.join(f['backtest_origins'])}; the forecast starts after "
        f"{month_name(f['last_complete_month'])}, the last complete month.",
    ]
    for day in f["flagged_days"]:
        rules = ", ".join(f"{n:,} {rule}" for rule, n in sorted(day["rows_by_rule"].items()))
        details.append(
            f"{day['day']}: {count(day['rows_quarantined'])} rows quarantined "
            f"({pct(day['quarantined_share'])} of the day; {rules}); the series keeps only "
            "that day's clean rows."
        )
    details += [f"Note: {note}" for note in f["notes"]]
    return {"answer": answer, "details": details}


def quality(run: dict[str, Any]) -> list[str]:
    """The data-quality paragraph: the tables the marts are built from."""
    lines = [
        f"{count(run['rows_in'])} rows read, {count(run['rows_clean'])} clean and "
        f"{count(run['rows_quarantined'])} quarantined "
        f"({pct(run['rows_quarantined'] / max(run['rows_in'], 1), 2)}), over "
        f"{run['period_start']} to {run['period_end']}.",
    ]
    last = run.get("last_run")
    if last:
        months = " to ".join(dict.fromkeys(m for m in (last["from"], last["to"]) if m))
        lines.append(
            f"The last validation replaced only {months} (and the undated rows): "
            f"{count(last['rows_in'])} rows read, {count(last['rows_quarantined'])} quarantined; "
            "the figures above count every month of the tables."
        )
    if run.get("day_only_timestamps"):
        lines.append(
            "The timestamps carry the day only (every row of a day at one clock time): no "
            "second was taken for a placeholder burst, and hours of the day are not analysed."
        )
    if run["z_min"] is None:
        lines.append("No row is clean, so there is no value to state.")
    elif run["value_unit"] == "relative value units":
        lines.append(
            f"Values are in {run['value_unit']}: the z-scored purchase value minus its minimum "
            f"over the clean rows (z_min = {run['z_min']:.4f})"
        )
    else:
        lines.append(f"Values are in {run['value_unit']}, from the configured mean and std.")
    return lines


def caveats(run: dict[str, Any], answered: set[str]) -> list[str]:
    notes = []
    if run.get("synthetic"):
        notes.append(
            "The input was made by the project's generator: the numbers describe synthetic "
            "data shaped like the 2016 sample, not the real marketplace."
        )
    if run["value_unit"] == "relative value units" and answered:
        notes.append(
            "Relative value units preserve ratios and shares between purchases but not money: "
            "set value.mean and value.std to report in currency."
        )
    if "drivers" in answered:
        notes.append(
            "The effect of the affiliate programme is observational: it adjusts for category, "
            "niche, price and age only, and programmes are not assigned at random."
        )
    if "forecast" in answered:
        notes.append(
            "Forecast intervals come from the models' own simulations; the backtest coverage "
            "column shows how often they held in the past."
        )
    return notes
