"""The report's words: every sentence is built from insights.json and the marts, no number is
written by hand."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd

from hotmart_spark.config import RELATIVE_UNIT
from hotmart_spark.transforms.ranking import top_count

WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NAIVE = (
    "naive_last_month",
    "naive_mean_3_months",
    "seasonal_naive_weekly",
    "seasonal_naive_yearly",
)


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


# HHI bands of the US merger guidelines (2010), on shares as fractions.
HHI_MODERATE, HHI_HIGH = 0.15, 0.25


def hhi_sentence(hhi: float) -> str:
    """The HHI in words that follow its value."""
    if hhi < HHI_MODERATE:
        band = "unconcentrated (below 0.15 in the usual merger-guideline bands)"
    elif hhi <= HHI_HIGH:
        band = "moderately concentrated (0.15 to 0.25 in the usual merger-guideline bands)"
    else:
        band = "highly concentrated (above 0.25 in the usual merger-guideline bands)"
    return (
        f"The HHI (sum of squared shares) is {hhi:.4f}: {band}, which says no producer holds "
        "a large share on its own, not that value is spread evenly."
    )


def relative_units_sentence(unit: str) -> str:
    """What the value shares mean in the unit they are stated in."""
    if unit != RELATIVE_UNIT:
        return f"Shares of value are shares of money ({unit})."
    return (
        "In relative value units every price is shifted by the unknown lowest price, so shares "
        "of value are not shares of money: with positive prices, a group's share of money lies "
        "between its share of units and its share of relative value."
    )


def producers(p: dict[str, Any]) -> dict[str, Any]:
    """Q1: concentration of value among producers."""
    top = p["top_share_by_revenue"]
    n = p["n_producers"]
    top5 = top["0.05"]
    level = f"{p['interval_level']:.0%}"
    verdict = "Yes, heavily" if top5 >= 0.5 else ("Partly" if top5 >= 0.25 else "Hardly")
    answer = (
        f"{verdict}: the top 5% of producers ({count(top_count(n, 0.05))} of {count(n)}) made "
        f"{pct(top5)} of the value ({level} interval "
        f"{share_interval(p['top_share_by_revenue_interval']['0.05'])}), and the "
        f"{count(p['n_top'])} producers selling more than the 95th percentile of units "
        f"({count(p['p95_units'])}) made {pct(p['top_revenue_share'])}."
    )
    exposure = p["gross_exposure"]
    units = p["top_share_by_units"]
    details = [
        f"The top 1%, 10% and 20% of producers by value made {pct(top['0.01'])}, "
        f"{pct(top['0.1'])} and {pct(top['0.2'])} of it; ranked by units, the top 1%, 5%, 10% "
        f"and 20% sold {pct(units['0.01'])}, {pct(units['0.05'])}, {pct(units['0.1'])} and "
        f"{pct(units['0.2'])} of the units. The Gini coefficient of producer value is "
        f"{score(p['gini'])} ({level} interval {score(p['gini_interval'][0])} to "
        f"{score(p['gini_interval'][1])}), of units {score(p['gini_units'])} (0: all equal, "
        f"1: one producer makes everything). {hhi_sentence(p['hhi'])}",
        bootstrap_sentence(p),
        relative_units_sentence(p["value_unit"]),
        *persistence_sentences(p["top_persistence"]),
        f"Gross exposure: the single biggest producer made {pct(exposure['1'])} of the value, "
        f"the top 10 {pct(exposure['10'])} and the top 50 {pct(exposure['50'])}. That much "
        "would go if they left and none of their buyers bought from another producer instead; "
        "buyers who switch would keep part of it.",
        f"Affiliates sold {pct(p['affiliate_units_share'])} of units and "
        f"{pct(p['affiliate_value_share'])} of value; the rest was sold directly.",
    ]
    return {"answer": answer, "details": details}


def share_interval(ends: list[float]) -> str:
    """A share's interval: "55.0% to 65.0%"."""
    return f"{pct(ends[0])} to {pct(ends[1])}"


# Above this top-5% share, resampling producers understates the uncertainty (simulated in
# docs/methods/q1-producers.md#uncertainty).
HEAVY_TOP_SHARE = 0.5


def bootstrap_sentence(p: dict[str, Any]) -> str:
    """Where the intervals come from, and how far to trust them."""
    sentence = (
        "The intervals resample producers (a Poisson bootstrap of the producer table): they "
        "say how much the figures would move with another set of producers of the same kind; "
        "for these producers, in this period, the figures are exact counts."
    )
    if p["top_share_by_revenue"]["0.05"] >= HEAVY_TOP_SHARE:
        sentence += (
            " With value this concentrated they are too narrow: where a few producers make "
            "most of the value, such 95% intervals held the truth about 9 times in 10 in "
            "simulation."
        )
    return sentence


def pct_range(values: list[float]) -> str:
    """The range of some shares in whole percents: "58% to 60%", or "5%" when one."""
    low, high = pct(min(values), 0), pct(max(values), 0)
    return low if low == high else f"{low} to {high}"


def persistence_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """Whether the same producers stay on top month after month."""
    if not rows:
        return ["With one month of data, the top producers cannot be followed from month to month."]
    kept = [r["persistence"] for r in rows]
    chance = [r["chance"] for r in rows]
    made = [r["previous_top_value_share"] for r in rows]
    return [
        f"Month to month, {pct_range(kept)} of a month's top 5% of producers were in the next "
        f"month's top 5% (a random pick of producers would keep {pct_range(chance)}), and "
        f"they made {pct_range(made)} of the next month's value: "
        + (
            "the platform depends on largely the same producers throughout."
            if min(kept) >= 0.5
            else "the top changes hands often, so the dependence is on whoever leads, not "
            "on a fixed few."
        )
    ]


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
        f"{month_name(r['month'])} {signed_pct(r['growth'], 1)} "
        f"({signed_pct(r['growth_per_day'], 1)} per day)"
        for r in t["monthly"]
        if r["growth"] is not None
    ]
    details = [
        "Month on month: " + ", ".join(growth) + ".",
        *[
            f"All {count(r['buyers'])} buyers of {month_name(r['month'])} count as new: the "
            "log shows nothing before the period, so a buyer who bought before looks new "
            "(censored)."
            for r in t["monthly"]
            if r["new_buyers_censored"]
        ],
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


# A lift within this of 1 is not named as a difference.
LIFT_TOLERANCE = 0.1


def lifts(segment: dict[str, Any]) -> str:
    """A segment's categories by lift: "eBook 2.25x, Podcast 0.52x"."""
    return ", ".join(
        f"{name} {lift:.2f}x"
        for name, lift in zip(segment["top_categories"], segment["top_category_lifts"], strict=True)
    )


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
    lifetime = sg.get("lifetime") or {}
    if "expected_purchase_days" in lifetime:
        error = lifetime["holdout"].get("total_error")
        checked = (
            ""
            if error is None
            else f"; the same model predicted the period's last {len(holdout_months(lifetime))} "
            f"months' total off by {error:+.1%}"
        )
        answer += (
            f" The buyers seen so far are expected to buy on "
            f"{count(lifetime['expected_purchase_days'])} days in the next "
            f"{lifetime['horizon_months']} months{checked}."
        )
    tiers = sg["frequency_tiers"]
    details = [
        f"Buyers are scored 1 to 5 on recency by quintiles of the days since their last "
        f"purchase (before {sg['reference_day']}; cuts at "
        f"{', '.join(count(c) for c in sg['recency_cuts'])} days) and on frequency by "
        f"purchase counts: 1 for one purchase, 2 from {tiers[0]}, 3 from {tiers[1]}, 4 from "
        f"{tiers[2]} and 5 from {tiers[3]} (quintiles would tie at one purchase and leave "
        "scores empty). Segments are named by the two scores; monetary value is not scored, "
        "as it mostly repeats frequency.",
        category_sentence(rfm),
        *lifetime_sentences(sg),
        cluster_sentence(sg),
    ]
    return {"answer": answer, "details": details}


def holdout_months(lifetime: dict[str, Any]) -> list[str]:
    """The months of the lifetime holdout (YYYY-MM)."""
    start = dt.date.fromisoformat(lifetime["holdout"]["start"])
    end = dt.date.fromisoformat(lifetime["holdout"]["end"])
    months = []
    while start < end:
        months.append(f"{start:%Y-%m}")
        start = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return months


# A Gamma-Gamma q this large means buyers' typical spends do not differ beyond chance.
NO_SPEND_HETEROGENEITY_Q = 1_000.0


def lifetime_sentences(sg: dict[str, Any]) -> list[str]:
    """Q3, deeper: what the BG/NBD and Gamma-Gamma models expect of the buyers, how well the
    same model predicted the period's last months, and what its assumptions leave out."""
    lifetime = sg.get("lifetime") or {}
    if not lifetime:
        return []
    if "skipped" in lifetime:
        return [f"Lifetime value is not estimated: {lifetime['skipped']}."]
    model = lifetime["purchases_model"]
    holdout = lifetime["holdout"]
    sentences = [
        f"Over the next {lifetime['horizon_months']} months (to {lifetime['horizon_end']}), "
        f"the {count(lifetime['buyers'])} buyers seen so far are expected to buy on "
        f"{count(lifetime['expected_purchase_days'])} days, worth "
        f"{amount(lifetime['expected_value'])} ({sg['value_unit']}), by a BG/NBD model of repeat purchase "
        f"days (fitted on {count(lifetime['patterns'])} distinct histories weighted by their "
        f"buyers: purchase rates Gamma(r = {model['r']:.3f}, alpha = {model['alpha']:.1f} "
        f"days), drop-out after a repeat Beta(a = {model['a']:.2f}, b = {model['b']:.2f})). "
        "New buyers are not in it: this is the value of the buyers already won.",
    ]
    error = holdout.get("total_error")
    if error is not None:
        quality = "close" if abs(error) <= 0.1 else "rough" if abs(error) <= 0.25 else "poor"
        sentences.append(
            f"Fitted on the purchases before {holdout['start']} and asked for the days from "
            f"then to {holdout['end']}, the same model predicted "
            f"{count(holdout['predicted_purchase_days'])} purchase days against "
            f"{count(holdout['actual_purchase_days'])} ({error:+.1%}): a {quality} "
            "prediction of the total; the chart compares it by the buyers' repeat days."
        )
    truth = lifetime.get("planted")
    if truth and truth.get("total_error") is not None:
        sentences.append(
            "This input was generated: its buyers' purchases simulated past the period number "
            f"{count(truth['actual_purchases'])}, against {count(truth['predicted_purchase_days'])} "
            f"purchase days predicted ({truth['total_error']:+.1%}; two purchases on one day "
            "are one purchase day, so the prediction counts a little fewer)."
        )
    spend = lifetime["spend_model"]
    correlation = lifetime["spend_frequency_correlation"]
    if spend["q"] > NO_SPEND_HETEROGENEITY_Q:
        spend_sentence = (
            "Buyers do not differ in what they typically spend beyond chance (the Gamma-Gamma "
            "fit puts all of the spread within buyers), so each buyer's expected spend per "
            "purchase day is the mean of all repeat purchase days'."
        )
    else:
        spend_sentence = (
            "Each buyer's expected spend per purchase day mixes the mean of all buyers with "
            f"its own (Gamma-Gamma, p = {spend['p']:.2f}, q = {spend['q']:.2f}, "
            f"v = {spend['v']:.2f})."
        )
    if correlation is not None and abs(correlation) > lifetime["max_spend_frequency_correlation"]:
        spend_sentence += (
            f" Careful: spend and repeat days are correlated ({correlation:+.2f}), which the "
            "spend model assumes they are not; the expected values lean on that."
        )
    elif correlation is not None:
        spend_sentence += (
            f" Spend and repeat days are nearly uncorrelated ({correlation:+.2f}), as the "
            "spend model assumes."
        )
    sentences.append(spend_sentence)
    sentences.append(
        "In this model a buyer can drop out only after a repeat purchase, so a buyer seen "
        "once counts as alive (P(alive) = 1): RFM's Lost and Hibernating one-time buyers "
        "show as likely active, with a low expected value. P(alive) separates buyers who "
        "came back and then went quiet."
    )
    return sentences


def category_sentence(rfm: list[dict[str, Any]]) -> str:
    """Whether any segment buys a category notably more, or less, than buyers overall."""
    apart = [
        (r["segment"], name, lift)
        for r in rfm
        for name, lift in zip(r["top_categories"], r["top_category_lifts"], strict=True)
        if abs(lift - 1) > LIFT_TOLERANCE
    ]
    if not apart:
        return (
            "No segment buys a category notably more than buyers overall (every named "
            f"category's lift is within {LIFT_TOLERANCE:.0%} of 1): the segments differ in "
            "when and how often they buy, not in what."
        )
    segment, name, lift = max(apart, key=lambda a: abs(a[2] - 1))
    return (
        f"Segments differ in what they buy: the largest difference is {segment} buying "
        f"{name} at {lift:.2f} times its share among all buyers."
    )


def cluster_sentence(sg: dict[str, Any]) -> str:
    """How producers were clustered, and how much structure the clusters show."""
    k = sg["clusters_k"]
    if sg["cluster_structure"] is None:
        return "Too few producers to cluster: all are in one group."
    silhouette = sg["cluster_silhouettes"][str(k)]
    structure = sg["cluster_structure"]
    meaning = {
        "strong": "the groups are clearly apart",
        "reasonable": "the groups are apart, though producers near their borders are not "
        "clearly in either",
        "weak": "the clusters are a convenient cut of a continuum rather than distinct groups",
        "no substantial": "producers do not form groups; the clusters are an arbitrary cut",
    }[structure]
    return (
        f"Producer clusters: k-means on behaviour (units as the one size measure, value per "
        f"sale, affiliate share, category mix, growth over the producer's own active days), "
        f"k = {k} by the best silhouette, {score(silhouette)}: {structure} structure "
        f"(Kaufman and Rousseeuw's bands), so {meaning}. Labels come from each cluster's "
        "medians."
    )


def drivers(d: dict[str, Any]) -> dict[str, Any]:
    """Q4: what makes a product sell more."""
    model = d["model"]
    if model["note"]:
        finding = f"The model was not fitted: {model['note']}."
    elif model["holdout_r2"] > max(model["baseline_r2"], 0.0) + 0.02:
        best = d["groups"][0]["group"]
        finding = (
            f"On the held-out producers' products the model explains "
            f"{pct(model['holdout_r2'], 0)} of the variation in log units (the category-niche "
            f"mean: {score(model['baseline_r2'])}); what it leans on most is {best}."
        )
    else:
        finding = (
            f"No product feature predicts sales here: on the held-out producers' products the "
            f"model's R² is {score(model['holdout_r2'])}, no better than the category-niche "
            f"mean ({score(model['baseline_r2'])})."
        )
    lever = programme_effect(d)
    details = [
        f"{model['products_modelled']:,} of {model['products']:,} products have "
        f"{d['early_sales']} sales to describe them; their features come from those first "
        "sales so that they do not grow with the volume they are meant to explain.",
        f"Importance is {model['importance']}, with features that move together (the device "
        "mix, the producer's size, the affiliate sales) shuffled together; the trees' own "
        "impurity importance, which favours features with many levels, is in the table "
        "beside it.",
        *silent_features(d),
        *programme_details(d),
    ]
    return {"answer": f"{finding} {lever}", "details": details}


def silent_features(d: dict[str, Any]) -> list[str]:
    """The numeric features that carry no signal by either measure: a Spearman interval
    that holds 0 and a group whose shuffling costs the model less than two of its sds."""
    weak_groups = {
        g["group"]
        for g in d["groups"]
        if g["importance"] is None or g["importance"] < 2 * (g["importance_sd"] or 0.0)
    }
    silent = [
        f["feature"]
        for f in d["features"]
        if f["spearman_low"] is not None
        and f["spearman_low"] <= 0 <= f["spearman_high"]
        and f["group"] in weak_groups
    ]
    if not silent:
        return []
    return [
        f"No signal in {', '.join(silent)}: each one's rank correlation with units is within "
        "its interval of 0, and shuffling it does not cost the model."
    ]


def ratio_bound(log_ratio: float | None, missing: str) -> str:
    """An interval bound on the log scale; one without a finite value reads `missing`."""
    return missing if log_ratio is None else f"{log_ratio:+.3f}"


def ratio_change(log_ratio: float | None) -> str:
    """A log ratio as a signed percentage change; an interval bound without a finite value
    (a dilution correction with no answer) reads 'unbounded'."""
    return "unbounded" if log_ratio is None else signed_pct(math.expm1(log_ratio))


def programme_effect(d: dict[str, Any]) -> str:
    """The programme's effect in one or two sentences, as strong as its interval allows."""
    effect = d["effect"]
    if effect is None or effect["estimate"] is None:
        why = d["effect_note"] or (effect or {}).get("note", "")
        return f"The affiliate programme's effect could not be estimated ({why})."
    interval = f"95% interval {ratio_change(effect['ci_low'])} to {ratio_change(effect['ci_high'])}"
    low, high = effect["ci_low"], effect["ci_high"]
    if low is not None and high is not None and (low > 0 or high < 0):
        comparison = "more per day on sale than" if low > 0 else "per day on sale against"
        return (
            f"Products with an affiliate programme sell {signed_pct(effect['units_change'])} "
            f"{comparison} comparable products without one ({interval}): an association "
            "adjusted for what the log shows, not a proven cause."
        )
    return (
        "The data cannot tell whether an affiliate programme raises a product's sales: the "
        f"estimate is {signed_pct(effect['units_change'])} per day on sale, but its {interval} "
        "includes no change."
    )


def programme_details(d: dict[str, Any]) -> list[str]:
    """How the effect was estimated, what it rests on and what would break it."""
    if d["effect"] is None:
        return []
    by_role = {e["role"]: e for e in d["effects"]}
    sensitivity, overlap = d["sensitivity"], d["overlap"]
    used, catalogue = overlap["products"], overlap.get("catalogue_products", overlap["products"])
    who = (
        f"Every one of the {count(used)} products counts, with its days on sale"
        if used >= catalogue
        else f"The products of a random sample of producers count ({count(used)} of the "
        f"{count(catalogue)}: drivers.effect_max_products), each with its days on sale"
    )
    lines = [
        f"Estimand: {d['estimand']}.",
        "The log shows a programme only through affiliate sales, and a product that sells "
        "more shows more of them; so the treatment is read from each product's first sale "
        f"alone. Products whose programme showed later sold their first sale through an "
        f"affiliate {pct(sensitivity['affiliate_sale_share'], 0)} of the time, so about "
        f"{pct(sensitivity['dilution'], 0)} of the products sold first direct have a "
        "programme; the estimates are corrected for that dilution.",
        f"{who} as exposure; propensities run from "
        f"{overlap['propensity_min']:.3f} to {overlap['propensity_max']:.3f} and "
        f"{pct(overlap['share_trimmed'])} of products fall outside "
        f"[{overlap['trim']}, {1 - overlap['trim']}] and leave the weighted estimate.",
    ]
    naive, check = by_role.get("naive"), by_role.get("check")
    if naive is not None and naive["estimate"] is not None:
        lines.append(
            f"Without controls the ratio reads {ratio_change(naive['estimate'])}: programme "
            "products sit where sales are high for other reasons."
        )
    if check is not None and check["estimate"] is not None:
        lines.append(
            f"Augmented inverse propensity weighting gives {ratio_change(check['estimate'])} "
            f"({ratio_change(check['ci_low'])} to {ratio_change(check['ci_high'])})."
        )
    # The GLM's placebo over its shuffles comes first; AIPW's single shuffle after it.
    placebo_glm = next((e for e in d["effects"] if e["role"] == "placebo"), None)
    if sensitivity.get("placebo_shuffles") and placebo_glm is not None:
        lines.append(
            f"Placebo: on the treatment shuffled within category and niche "
            f"({sensitivity['placebo_shuffles']} times) the estimate averages "
            f"{placebo_glm['estimate']:+.3f} with a spread of "
            f"{sensitivity['placebo_sd']:.3f}; the intervals here are at least that wide."
        )
    if "e_value" in sensitivity:
        lines.append(
            f"E-value {sensitivity['e_value']:.2f} (interval {sensitivity['e_value_interval']:.2f}): "
            "an unmeasured feature would have to raise both the chance of a programme and "
            "sales by that ratio to explain the estimate away. What would break it: a "
            "programme chosen on demand the log does not show, or affiliates who sell a "
            "different share of each product's units."
        )
    return lines


def planted(
    run: dict[str, Any],
    drivers: dict[str, Any] | None,
    forecast: dict[str, Any] | None = None,
    segments: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Planted against recovered, for a generated input: what the generator put in (or
    simulated past the period) and what the pipeline found, each with its interval."""
    truth = run.get("planted")
    if truth is None:
        return None
    effect = (drivers or {}).get("effect")
    planted_effect = truth["programme_effect"]["log_ratio"]
    if effect is None or effect["estimate"] is None:
        recovered, inside = "not estimated", ""
    else:
        low, high = effect["ci_low"], effect["ci_high"]
        recovered = (
            f"{effect['estimate']:+.3f} ({ratio_bound(low, '-inf')} to {ratio_bound(high, '+inf')})"
        )
        held = (low is None or low <= planted_effect) and (high is None or planted_effect <= high)
        inside = "yes" if held else "no"
    rows = [
        [
            "affiliate programme effect on expected sales (log ratio)",
            f"{planted_effect:+.3f}",
            recovered,
            inside,
        ]
    ]
    rows += forecast_against_simulated(simulated_months(run), forecast)
    rows += categories_against_simulated(run, forecast)
    rows += lifetime_against_planted((segments or {}).get("lifetime") or {})
    missed = [r[0] for r in rows if r[3] == "no"]
    unchecked = [r[0] for r in rows if r[3] == ""]
    if missed:
        verdict = f"Missed: {', '.join(missed)}."
    elif unchecked:
        verdict = f"Not checked (no estimate): {', '.join(unchecked)}."
    else:
        verdict = "Every recovered interval holds its planted value."
    answer = (
        "The input was generated with known answers; the table sets each against what the "
        f"pipeline recovered. {verdict}"
    )
    lifetime = (segments or {}).get("lifetime") or {}
    if any(name.startswith(LIFETIME_ROW) for name in missed) and "planted" in lifetime:
        answer += " " + purchase_day_note(lifetime)
    return {"answer": answer, "rows": rows}


LIFETIME_ROW = "buyers' BG/NBD"


def purchase_day_note(lifetime: dict[str, Any]) -> str:
    """Why the buyers' BG/NBD parameters can miss the planted ones: what each counts."""
    fitted, planted_values = lifetime["purchases_model"], lifetime["planted"]["parameters"]
    ratio = (fitted["r"] / fitted["alpha"]) / (planted_values["r"] / planted_values["alpha"])
    return (
        "The buyers' model counts purchase days and the generator plants purchases (two on one "
        f"day are one), so the fitted mean purchase rate, r / alpha, is {ratio - 1:+.1%} off "
        "the planted one."
    )


def lifetime_against_planted(lifetime: dict[str, Any]) -> list[list[str]]:
    """The planted BG/NBD parameters against the fitted ones and their 95% intervals."""
    truth = lifetime.get("planted")
    if not truth:
        return []
    rows = []
    for name in ("r", "alpha", "a", "b"):
        planted_value = truth["parameters"][name]
        estimate = lifetime["purchases_model"][name]
        low, high = lifetime["purchases_model_intervals"][name]
        rows.append(
            [
                f"{LIFETIME_ROW} {name} (days)" if name == "alpha" else f"{LIFETIME_ROW} {name}",
                f"{planted_value:.3g}",
                f"{estimate:.3g} ({low:.3g} to {high:.3g})",
                "yes" if holds(low, high, planted_value) else "no",
            ]
        )
    return rows


def simulated_months(run: dict[str, Any]) -> dict[str, float] | None:
    """Value by month of the months the generator simulated past the period, or None for data
    it did not make. Only in relative units: the unit a generated log's values are reported
    in unless the run converts them to a currency."""
    after = (run.get("planted") or {}).get("after_period")
    if after is None or run["value_unit"] != RELATIVE_UNIT:
        return None
    return {m["month"]: m["value"] for m in after["months"]}


def forecast_against_simulated(
    simulated: dict[str, float] | None, forecast: dict[str, Any] | None
) -> list[list[str]]:
    """One row per forecast month the generator simulated: its value against the forecast
    and the forecast's 95% interval."""
    if simulated is None or forecast is None:
        return []
    rows = []
    for m in forecast["months"]:
        if m["month"] not in simulated:
            continue
        value = simulated[m["month"]]
        rows.append(
            [
                f"value in {month_name(m['month'])} (forecast; simulated past the period)",
                amount(value),
                f"{amount(m['value'])} ({interval(m['lo95'], m['hi95'])})",
                "yes" if holds(m["lo95"], m["hi95"], value) else "no",
            ]
        )
    total = forecast["total"]
    if len(rows) == total["months"]:
        value = sum(simulated[m["month"]] for m in forecast["months"])
        rows.append(
            [
                "value of the forecast months together (simulated past the period)",
                amount(value),
                f"{amount(total['mean'])} ({interval(total['lo95'], total['hi95'])})",
                "yes" if holds(total["lo95"], total["hi95"], value) else "no",
            ]
        )
    return rows


def categories_against_simulated(
    run: dict[str, Any], forecast: dict[str, Any] | None
) -> list[list[str]]:
    """One row per category series: its months simulated past the period, together, against
    its reconciled forecast and 95% interval (categories forecast within "other" summed)."""
    after = (run.get("planted") or {}).get("after_period") or {}
    grouping = ((forecast or {}).get("series") or {}).get("product_category") or {}
    if "categories" not in after or "series" not in grouping or simulated_months(run) is None:
        return []
    series = {s["series"]: s for s in grouping["series"][1:]}
    months = {m["month"] for m in grouping["series"][0]["months"]}
    simulated = dict.fromkeys(series, 0.0)
    seen: set[str] = set()
    for c in after["categories"]:
        if c["month"] in months:
            name = c["category"] if c["category"] in series else "other"
            simulated[name] = simulated.get(name, 0.0) + c["value"]
            seen.add(c["month"])
    if seen != months:
        return []
    return [
        [
            f"value of {name} in the forecast months together (reconciled; simulated)",
            amount(simulated[name]),
            f"{amount(s['total']['value'])} ({interval(s['total']['lo95'], s['total']['hi95'])})",
            "yes" if holds(s["total"]["lo95"], s["total"]["hi95"], simulated[name]) else "no",
        ]
        for name, s in series.items()
    ]


def holds(low: float | None, high: float | None, value: float) -> bool:
    """Whether an interval holds the value; an interval without an end (too few backtest
    months to calibrate one) holds nothing it can be checked against."""
    return low is not None and high is not None and low <= value <= high


def interval(low: float | None, high: float | None) -> str:
    """An interval's ends, or why there are none."""
    if low is None or high is None:
        return "no interval: too few backtest months to calibrate one"
    return f"{amount(low)} to {amount(high)}"


def forecast(f: dict[str, Any]) -> dict[str, Any]:
    """Q5: the next three months."""
    months = f["months"]
    total = f["total"]
    platform = sum(m["platform_revenue"] for m in months)
    scored = {r["model"]: r for r in f["backtest"]}
    chosen = scored.get(f["model"])
    answer = (
        f"{month_name(months[0]['month'])} to {month_name(months[-1]['month'])} should bring "
        f"about {amount(total['mean'])} of value ({amount(platform)} platform revenue), 95% "
        f"interval {interval(total['lo95'], total['hi95'])}: "
        + ", ".join(f"{amount(m['value'])}" for m in months)
        + " a month."
    )
    later = f["backtest_half"] == "evaluation"
    where = (
        f"on the later backtest origins (from {f['first_scored_origin']}), which the choice "
        "did not see,"
        if later
        else "on the same origins it was chosen on (too few to split): not out of sample"
    )
    if chosen is None:
        comparison = f"The model is {f['model']}, untested: {'; '.join(f['notes'])}."
    else:
        baselines = f["improvement_over_baselines"]
        worse = sorted(name for name, gain in baselines.items() if gain < 0)
        comparison = (
            f"{f['model']} was chosen by its error on the earlier backtest origins; {where} "
            f"its error was {chosen['mape']:.1f}% of a month's value over {int(chosen['n'])} "
            "backtest months"
        )
        if f["model"] in NAIVE:
            comparison += ": no statistical model beat this naive baseline."
        elif worse:
            comparison += (
                f", worse than the naive baseline(s) {' and '.join(worse)}: the choice did "
                "not hold up, and a simpler forecast would have done as well."
            )
        else:
            best = max(baselines.values(), default=0.0)
            comparison += f", {pct(best, 0)} less error than the best naive baseline."
        if chosen["coverage80"] is not None:
            comparison += (
                f" Its 80% intervals held in {pct(chosen['coverage80'], 0)} of those months "
                f"and its 95% intervals in {pct(chosen['coverage95'], 0)}."
            )
    details = [
        comparison,
        f"{len(f['backtest_origins'])} backtest origins, one every {f['origin_step_days']} "
        f"days from {f['backtest_origins'][0] if f['backtest_origins'] else '-'}; the "
        f"forecast starts after {month_name(f['last_complete_month'])}, the last complete "
        "month.",
    ]
    if not f["yearly_seasonality"]:
        details.append(
            "The data spans less than two years, so a yearly pattern cannot be seen: the "
            "forecast assumes the coming months behave like the recent ones."
        )
    for day in f["flagged_days"]:
        rules = ", ".join(f"{n:,} {rule}" for rule, n in sorted(day["rows_by_rule"].items()))
        details.append(
            f"{day['day']}: {count(day['rows_quarantined'])} rows quarantined "
            f"({pct(day['quarantined_share'])} of the day; {rules}); the series keeps only "
            "that day's clean rows."
        )
    details += [f"Note: {note}" for note in f["notes"]]
    details += series_sentences(f.get("series", {}), total["mean"])
    return {"answer": answer, "details": details}


GROUPING_NAMES = {"product_category": "category", "product_niche": "niche"}


def series_sentences(groupings: dict[str, Any], headline: float) -> list[str]:
    """Per category (or niche): what the reconciled series say, and whether reconciling the
    series with the total made the forecasts better in the backtest."""
    lines = []
    for column, g in groupings.items():
        if "skipped" in g:
            lines.append(f"{g['skipped'][0].upper()}{g['skipped'][1:]}.")
            continue
        name = GROUPING_NAMES.get(column, column)
        top, parts = g["series"][0], g["series"][1:]
        reconciled = top["total"]["value"]
        split = ", ".join(
            f"{s['series']} {amount(s['total']['value'])} ({pct(s['total']['value'] / reconciled, 0)})"
            for s in parts
        )
        line = (
            f"Per {name}: each of {len(parts)} series ran the total's models and backtest and "
            f"kept its own best; reconciled by {g['method']} so that they add up, the next "
            f"months split as {split}. They add up to {amount(reconciled)}, "
            f"{pct(reconciled / headline - 1, 1)} from the total's own forecast above."
        )
        if g["relative_mae"] is None:
            line += " The reconciliation could not be backtested."
        else:
            where = "later" if g["scored_half"] == "evaluation" else "same (too few to split)"
            verdict = (
                "it helped"
                if g["helped"]
                else "it did not help: the series' own forecasts were as good or better"
            )
            line += (
                f" On the {where} backtest origins the reconciled forecasts' error was "
                f"{pct(g['relative_mae'], 0)} of the unreconciled ones' (geometric mean over "
                f"the series): {verdict}."
            )
        lines.append(line)
        lines += [f"Note ({name}): {note}" for note in g["notes"]]
    return lines


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
    elif run["value_unit"] == RELATIVE_UNIT:
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
    if run["value_unit"] == RELATIVE_UNIT and answered:
        notes.append(
            "Relative value units are the z-scored value minus its minimum: prices shifted by the "
            "unknown lowest price. Counts are exact and differences between values keep their "
            "ratios, but shares, the Gini and RFM monetary scores move with that lowest price "
            "(a share of money lies between the share of units and the share of relative value). "
            "Set value.mean and value.std to report in currency."
        )
    if "drivers" in answered:
        notes.append(
            "The effect of the affiliate programme is observational: it adjusts for category, "
            "niche, first-sale price, age and the producer's other products only, and "
            "programmes are not assigned at random."
        )
    if "forecast" in answered:
        notes.append(
            "Forecast intervals are conformal: multiples of the forecast set by how far actual "
            "months fell from the model's backtest forecasts. They hold as often as they held "
            "in the backtest only while the coming months vary as the past ones did."
        )
    return notes
