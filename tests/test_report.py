"""The report: built from the small run, numbers equal to the marts, valid charts, a page that
opens in a real browser with every image decoded and the five answers."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from hotmart_spark.config import RELATIVE_UNIT
from hotmart_spark.report import charts, fed, page, story
from hotmart_spark.report.page import MARTS, QUESTIONS
from hotmart_spark.transforms.ranking import top_count
from tests.conftest import REQUIRE_TOOLS_ENV, SmallRun, missing_tool

CHARTS = {
    "pareto",
    "monthly_value",
    "monthly_forecast",
    "weekday_hour",
    "categories",
    "channels",
    "buyer_lifetime",
    "rfm_segments",
    "producer_clusters",
    "drivers",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def report_dir(small_run: SmallRun) -> Path:
    return small_run.out / "report"


def insights(small_run: SmallRun) -> dict:
    return json.loads((report_dir(small_run) / "insights.json").read_text())


def mart(spark: SparkSession, small_run: SmallRun, name: str):
    return spark.read.parquet(str(small_run.out / "marts" / name)).toPandas()


def test_every_chart_is_a_png_that_decodes(small_run: SmallRun) -> None:
    assert set(small_run.results["report"]["charts"]) == CHARTS
    for name in CHARTS:
        path = report_dir(small_run) / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        height, width, _ = matplotlib.image.imread(path).shape
        assert width > 300 and height > 200, name


def test_the_page_is_self_contained(small_run: SmallRun) -> None:
    html = (report_dir(small_run) / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, flags=re.IGNORECASE)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert {name for name in re.findall(r'alt="(\w+) chart"', html)} == CHARTS
    assert html.count('class="summary-answer"') == len(QUESTIONS)
    assert "relative value units" in html
    assert "synthetic data" in html


def test_insight_numbers_equal_the_marts(spark: SparkSession, small_run: SmallRun) -> None:
    found = insights(small_run)
    producers = mart(spark, small_run, "producers").sort_values("revenue_rank")
    total, n = producers["revenue"].sum(), len(producers)
    p = found["producers"]
    assert p["n_producers"] == n
    assert p["n_top"] == int(producers["is_top"].sum())
    assert p["top_revenue_share"] == pytest.approx(
        producers.loc[producers["is_top"], "revenue"].sum() / total
    )
    for k, share in p["top_share_by_revenue"].items():
        top = producers["revenue"].iloc[: top_count(n, float(k))].sum()
        assert share == pytest.approx(top / total), k

    monthly = mart(spark, small_run, "monthly_revenue").sort_values("month")
    assert [m["value"] for m in found["trends"]["monthly"]] == pytest.approx(
        monthly["value"].tolist()
    )
    assert [m["units"] for m in found["trends"]["monthly"]] == monthly["units"].tolist()

    segments = mart(spark, small_run, "rfm_segments").set_index("segment")
    for row in found["segments"]["rfm"]:
        assert row["buyers"] == segments.loc[row["segment"], "buyers"]
        assert row["value_share"] == pytest.approx(segments.loc[row["segment"], "value_share"])

    drivers = mart(spark, small_run, "product_drivers").set_index("feature")
    for row in found["drivers"]["features"]:
        expected = drivers.loc[row["feature"], "spearman"]
        assert row["spearman"] == (None if pd.isna(expected) else pytest.approx(expected))
    by_group = drivers.groupby("group")["permutation_importance"].first()
    for row in found["drivers"]["groups"]:
        expected = by_group[row["group"]]
        assert row["importance"] == (None if pd.isna(expected) else pytest.approx(expected))
    model = mart(spark, small_run, "product_model").iloc[0]
    assert found["drivers"]["model"]["holdout_r2"] == pytest.approx(model["holdout_r2"])
    effects = mart(spark, small_run, "product_effects")
    for row, expected in zip(found["drivers"]["effects"], effects["estimate"], strict=True):
        # An estimate that could not be had is null in both.
        assert (
            pd.isna(expected)
            if row["estimate"] is None
            else row["estimate"] == pytest.approx(expected)
        )

    ahead = mart(spark, small_run, "forecast_monthly").query("kind == 'forecast'")
    ahead = ahead.sort_values("month")
    for row, (_, expected) in zip(found["forecast"]["months"], ahead.iterrows(), strict=True):
        for key in ("value", "lo80", "hi80", "lo95", "hi95"):
            assert row[key] == pytest.approx(expected[key]), key
    backtest = mart(spark, small_run, "forecast_backtest").query(
        f"horizon == 'all' and half == '{found['forecast']['backtest_half']}'"
    )
    for row in found["forecast"]["backtest"]:
        expected = backtest.set_index("model").loc[row["model"]]
        assert (row["mae"], row["mape"]) == (
            pytest.approx(expected["mae"]),
            pytest.approx(expected["mape"]),
        )
    assert found["run"]["rows_clean"] == small_run.results["validate"]["rows_clean"]


def test_the_report_reads_only_summaries() -> None:
    assert "clean" not in MARTS and "buyer_rfm" not in MARTS and "products" not in MARTS


def test_number_formats() -> None:
    assert story.count(1590315) == "1,590,315"
    assert story.pct(0.63875) == "63.9%"
    assert story.pct(0.5, 0) == "50%"
    assert story.signed_pct(0.132) == "+13%"
    assert story.signed_pct(-0.175, 1) == "-17.5%"
    assert story.amount(153234.72) == "153,235"
    assert story.score(-0.0041) == "0.00"
    assert story.score(-0.08) == "-0.08"
    assert story.score(0.8712) == "0.87"
    assert story.pct(-0.00004) == "0.0%"
    assert story.signed_pct(-0.004) == "+0%"
    assert story.month_name("2016-02") == "February 2016"


def test_producer_sentence_from_hand_made_numbers() -> None:
    numbers = {
        "n_producers": 100,
        "n_top": 4,
        "p95_units": 50.0,
        "top_revenue_share": 0.4,
        "top_share_by_revenue": {"0.01": 0.2, "0.05": 0.6, "0.1": 0.7, "0.2": 0.8},
        "gini": 0.75,
        "hhi": 0.05,
        "gross_exposure": {"1": 0.2, "5": 0.6, "10": 0.7, "50": 0.95},
        "top_share_by_units": {"0.01": 0.1, "0.05": 0.3, "0.1": 0.45, "0.2": 0.6},
        "gini_units": 0.5,
        "affiliate_units_share": 0.25,
        "affiliate_value_share": 0.2,
        "value_unit": RELATIVE_UNIT,
        "interval_level": 0.95,
        "gini_interval": [0.7, 0.8],
        "top_share_by_revenue_interval": {"0.05": [0.55, 0.65]},
        "top_persistence": [
            {"persistence": 0.6, "chance": 0.05, "previous_top_value_share": 0.5},
            {"persistence": 0.8, "chance": 0.06, "previous_top_value_share": 0.55},
        ],
    }
    answer = story.producers(numbers)["answer"]
    assert answer == (
        "Yes, heavily: the top 5% of producers (5 of 100) made 60.0% of the value (95% "
        "interval 55.0% to 65.0%), and the 4 producers selling more than the 95th percentile "
        "of units (50) made 40.0%."
    )
    details = story.producers(numbers)["details"]
    assert (
        "ranked by units, the top 1%, 5%, 10% and 20% sold 10.0%, 30.0%, 45.0% and 60.0%"
        in (details[0])
    )
    assert "0.75 (95% interval 0.70 to 0.80), of units 0.50" in details[0]
    assert "0.0500: unconcentrated" in details[0]
    assert details[1].endswith("held the truth about 9 times in 10 in simulation.")
    assert "lies between its share of units and its share of relative value" in details[2]
    assert details[3].startswith(
        "Month to month, 60% to 80% of a month's top 5% of producers were in the next month's "
        "top 5% (a random pick of producers would keep 5% to 6%), and they made 50% to 55%"
    )
    assert details[3].endswith("largely the same producers throughout.")
    assert details[4].startswith("Gross exposure: the single biggest producer made 20.0%")
    numbers["top_share_by_revenue"]["0.05"] = 0.2
    assert story.producers(numbers)["answer"].startswith("Hardly: ")
    assert "too narrow" not in story.producers(numbers)["details"][1]
    numbers["top_persistence"][0]["persistence"] = 0.2
    assert "changes hands often" in story.producers(numbers)["details"][3]
    numbers["top_persistence"] = []
    assert "cannot be followed" in story.producers(numbers)["details"][3]


def test_segment_sentences_from_hand_made_numbers() -> None:
    numbers = {
        "reference_day": "2016-07-01",
        "recency_cuts": [26.0, 59.0, 96.0, 131.0],
        "frequency_tiers": [2, 3, 4, 6],
        "rfm": [
            {"segment": "Lost", "buyers": 60, "buyer_share": 0.6, "value_share": 0.3,
             "top_categories": ["Podcast"], "top_category_lifts": [1.05]},
            {"segment": "Champions", "buyers": 40, "buyer_share": 0.4, "value_share": 0.7,
             "top_categories": ["eBook", "Podcast"], "top_category_lifts": [1.08, 0.95]},
        ],
        "clusters_k": 2,
        "cluster_silhouettes": {"2": 0.632, "3": 0.44},
        "cluster_structure": "reasonable",
        "producer_clusters": [
            {"label": "small, direct", "producers": 30, "value_share": 0.1},
            {"label": "large, direct", "producers": 10, "value_share": 0.9},
        ],
    }  # fmt: skip
    told = story.segments(numbers)
    assert told["answer"].startswith(
        "Champions and Lost buyers are 100.0% of buyers and bring 100.0% of the value; "
        "producers form 2 clusters, and the 'large, direct' one (25.0% of producers) holds "
        "90.0% of the value."
    )
    assert "1 for one purchase, 2 from 2, 3 from 3, 4 from 4 and 5 from 6" in told["details"][0]
    # Every lift within 10% of 1: no difference in what segments buy.
    assert told["details"][1].startswith("No segment buys a category notably more")
    assert "k = 2 by the best silhouette, 0.63: reasonable structure" in told["details"][2]
    numbers["rfm"][1]["top_category_lifts"] = [2.25, 0.52]
    assert story.segments(numbers)["details"][1] == (
        "Segments differ in what they buy: the largest difference is Champions buying "
        "eBook at 2.25 times its share among all buyers."
    )
    assert story.lifts(numbers["rfm"][1]) == "eBook 2.25x, Podcast 0.52x"


def test_the_hhi_is_worded_by_its_band() -> None:
    # Ten producers of 10% each: HHI 10 * 0.01 = 0.10; one of 70% and three of 10%:
    # 0.49 + 0.03 = 0.52; four of 25%: 0.25.
    assert "unconcentrated" in story.hhi_sentence(10 * 0.1**2)
    assert "highly concentrated" in story.hhi_sentence(0.7**2 + 3 * 0.1**2)
    assert "moderately concentrated" in story.hhi_sentence(0.2)
    # 0.25 itself is the top of the moderate band (highly concentrated is above it).
    assert "moderately concentrated" in story.hhi_sentence(4 * 0.25**2)


CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const answers = [...document.querySelectorAll("li.summary-answer")]
    .filter((li) => li.textContent.trim().length > 80);
  const result = {
    images: images.length,
    decoded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
    answers: answers.length,
  };
  document.body.setAttribute("data-check", JSON.stringify(result));
});
</script>
</body>"""


@pytest.mark.browser
def test_the_page_opens_in_headless_chromium(small_run: SmallRun, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        missing_tool("Chromium")
    page = tmp_path / "report.html"
    html = (report_dir(small_run) / "report.html").read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", CHECK), encoding="utf-8")
    # The flags keep Chromium off the network (this machine has none) and out of the sandbox
    # that root cannot use.
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    match = re.search(r"data-check=\"([^\"]+)\"", dom)
    assert match, "the check script did not run"
    result = json.loads(match.group(1).replace("&quot;", '"'))
    assert result == {"images": len(CHARTS), "decoded": len(CHARTS), "answers": len(QUESTIONS)}


def test_drivers_sentence_when_nothing_could_be_estimated() -> None:
    numbers = {
        "early_sales": 10,
        "model": {
            "note": "only 30 products have 10 sales; the model needs drivers.min_products (100)",
            "products": 45,
            "products_modelled": 30,
            "importance": "permutation on the holdout (drop in R2)",
        },
        "features": [],
        "groups": [],
        "effect": None,
        "effect_note": "not estimable: 30 products sold first through an affiliate and 0 "
        "direct; each side needs 10",
        "effects": [],
    }
    answer = story.drivers(numbers)["answer"]
    assert answer == (
        "The model was not fitted: only 30 products have 10 sales; the model needs "
        "drivers.min_products (100). The affiliate programme's effect could not be estimated "
        "(not estimable: 30 products sold first through an affiliate and 0 direct; each side "
        "needs 10)."
    )


def effect_numbers(estimate: float, low: float | None, high: float | None) -> dict:
    return {
        "effect": {
            "estimate": estimate,
            "ci_low": low,
            "ci_high": high,
            "units_change": math.expm1(estimate),
        },
        "effect_note": "",
    }


def test_the_details_say_when_the_effect_ran_on_a_sample_of_producers() -> None:
    drivers = {
        **effect_numbers(0.2, 0.1, 0.3),
        "estimand": "the ratio",
        "effects": [],
        "sensitivity": {"affiliate_sale_share": 0.5, "dilution": 0.3},
        "overlap": {"products": 1000, "propensity_min": 0.01, "propensity_max": 0.9,
                    "share_trimmed": 0.0, "trim": 0.01},
    }  # fmt: skip
    whole = story.programme_details(drivers)[2]
    assert whole.startswith("Every one of the 1,000 products counts, with its days on sale as")
    drivers["overlap"]["catalogue_products"] = 5000
    sampled = story.programme_details(drivers)[2]
    assert sampled.startswith(
        "The products of a random sample of producers count (1,000 of the 5,000: "
        "drivers.effect_max_products), each with its days on sale as exposure;"
    )


def test_the_effect_sentence_follows_its_interval() -> None:
    # exp(0.2) - 1 = +22%; exp(0.1) - 1 = +11%; exp(0.3) - 1 = +35%.
    assert story.programme_effect(effect_numbers(0.2, 0.1, 0.3)) == (
        "Products with an affiliate programme sell +22% more per day on sale than comparable "
        "products without one (95% interval +11% to +35%): an association adjusted for what "
        "the log shows, not a proven cause."
    )
    # An interval across no change, with an upper bound the correction could not give.
    assert story.programme_effect(effect_numbers(0.2, -0.1, None)) == (
        "The data cannot tell whether an affiliate programme raises a product's sales: the "
        "estimate is +22% per day on sale, but its 95% interval -10% to unbounded includes "
        "no change."
    )


def test_planted_against_recovered_only_for_a_generated_input() -> None:
    drivers = effect_numbers(0.14, -0.19, 0.5)
    truth = {"programme_effect": {"log_ratio": 0.25}}
    section = story.planted({"planted": truth, "value_unit": RELATIVE_UNIT}, drivers)
    assert section["rows"] == [
        [
            "affiliate programme effect on expected sales (log ratio)",
            "+0.250",
            "+0.140 (-0.190 to +0.500)",
            "yes",
        ]
    ]
    assert "Every recovered interval holds its planted value." in section["answer"]
    missed = story.planted(
        {"planted": truth, "value_unit": RELATIVE_UNIT}, effect_numbers(0.6, 0.4, 0.8)
    )
    assert missed["rows"][0][3] == "no" and "Missed:" in missed["answer"]
    assert story.planted({"value_unit": RELATIVE_UNIT}, drivers) is None


def test_planted_months_set_against_the_forecast() -> None:
    drivers = effect_numbers(0.14, -0.19, 0.5)
    after = {"months": [{"month": "2016-07", "value": 120.0}, {"month": "2016-08", "value": 90.0}]}
    truth = {"programme_effect": {"log_ratio": 0.25}, "after_period": after}
    # July's 120 lies in 95-130; August's 90 is below 95-135; September was not simulated.
    forecast = {
        "months": [
            {"month": "2016-07", "value": 110.0, "lo95": 95.0, "hi95": 130.0},
            {"month": "2016-08", "value": 112.0, "lo95": 95.0, "hi95": 135.0},
            {"month": "2016-09", "value": 115.0, "lo95": 94.0, "hi95": 140.0},
        ],
        "total": {"months": 3, "mean": 337.0, "lo95": 300.0, "hi95": 380.0},
    }
    run = {"planted": truth, "value_unit": RELATIVE_UNIT}
    section = story.planted(run, drivers, forecast)
    assert section["rows"][1:] == [
        [
            "value in July 2016 (forecast; simulated past the period)",
            "120",
            "110 (95 to 130)",
            "yes",
        ],
        [
            "value in August 2016 (forecast; simulated past the period)",
            "90",
            "112 (95 to 135)",
            "no",
        ],
    ]
    assert "Missed: value in August 2016" in section["answer"]
    # September was not simulated: no total to set against the forecast's.
    forecast["months"] = forecast["months"][:2]
    forecast["total"] = {"months": 2, "mean": 222.0, "lo95": 200.0, "hi95": 250.0}
    assert story.planted(run, drivers, forecast)["rows"][-1] == [
        "value of the forecast months together (simulated past the period)",
        "210",
        "222 (200 to 250)",
        "yes",
    ]
    # Too few backtest months for a 95% interval: its high end is null, and nothing is held.
    forecast["total"] = {"months": 2, "mean": 222.0, "lo95": None, "hi95": None}
    row = story.planted(run, drivers, forecast)["rows"][-1]
    assert row[2:] == ["222 (no interval: too few backtest months to calibrate one)", "no"]
    # Converted to a currency, the run's values are no longer in the simulated months' unit.
    in_currency = story.planted({"planted": truth, "value_unit": "BRL"}, drivers, forecast)
    assert len(in_currency["rows"]) == 1


def test_the_pareto_curve_is_fed_from_the_origin_in_order() -> None:
    """The mart's rows come back in any order; the line must not zigzag through them."""
    curve = pd.DataFrame(
        {"producer_share": [0.5, 0.1, 1.0, 0.2], "revenue_share": [0.95, 0.6, 1.0, 0.8]}
    )
    points = fed.lorenz_points(curve)
    assert points.values.tolist() == [[0, 0], [0.1, 0.6], [0.2, 0.8], [0.5, 0.95], [1, 1]]


def test_bars_are_fed_largest_first_and_grids_complete() -> None:
    breakdowns = pd.DataFrame(
        {
            "dimension": ["niche", "category", "niche", "category", "niche"],
            "level": ["Yoga", "Podcast", "Music", "eBook", "Cooking"],
            "value_share": [0.2, 0.3, 0.5, 0.7, 0.2],
        }
    )
    # Two levels each: niche's Music, then Cooking before Yoga (a tie, by name).
    top = fed.top_levels(breakdowns, ("category", "niche"), 2)
    assert top["level"].tolist() == ["eBook", "Podcast", "Music", "Cooking"]
    effects = pd.DataFrame(
        {
            "role": ["placebo", "naive", "headline", "check", "uncorrected", "placebo"],
            "method": ["p2", "n", "h", "c", "u", "p1"],
            "estimate": [0.0, 0.8, 0.2, float("nan"), 0.15, 0.01],
        }
    )
    # The check without an estimate is not drawn.
    assert fed.estimates_by_role(effects)["method"].tolist() == ["h", "n", "u", "p1", "p2"]
    importance = pd.DataFrame(
        {
            "feature": ["a1", "a2", "b", "c"],
            "group": ["a", "a", "b", "c"],
            "permutation_importance": [0.1, 0.1, 0.3, float("nan")],
        }
    )
    assert fed.importance_by_group(importance)["group"].tolist() == ["b", "a"]
    backtest = pd.DataFrame({"model": ["x", "naive", "y"], "mape": [20.0, 12.0, 12.0]})
    assert fed.best_first(backtest)["model"].tolist() == ["naive", "y", "x"]
    hours = pd.DataFrame({"weekday": [7, 1, 1], "hour": [23, 0, 0], "value": [5.0, 1.0, 2.0]})
    grid = fed.weekday_hour_grid(hours)
    assert grid.shape == (7, 24) and grid.iloc[0, 0] == 3.0 and grid.iloc[6, 23] == 5.0
    assert grid.to_numpy().sum() == 8.0


def test_every_chart_is_fed_in_drawing_order(
    spark: SparkSession, small_run: SmallRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's marts, each shuffled, through the report's chart builders: what each chart
    is handed must be in the order it draws it."""
    fed_to: dict[str, tuple] = {}
    for name in ("pareto", "monthly_value", "weekday_hour", "breakdown_bars", "share_pairs",
                 "drivers", "monthly_forecast", "lifetime_calibration"):  # fmt: skip

        def record(*args, _name=name, **kwargs) -> bytes:
            fed_to.setdefault(_name, ())
            fed_to[_name] += (args,)
            return b""

        monkeypatch.setattr(charts, name, record)
    marts = {m: mart(spark, small_run, m).sample(frac=1.0, random_state=3) for m in MARTS}
    found = insights(small_run)
    page.build_charts(found, marts, page.answered(found))
    assert set(fed_to) == {"pareto", "monthly_value", "weekday_hour", "breakdown_bars",
                           "share_pairs", "drivers", "monthly_forecast",
                           "lifetime_calibration"}  # fmt: skip
    # A Lorenz curve: from (0, 0) to (1, 1), never going back on either axis.
    ((curve, _),) = fed_to["pareto"]
    assert curve.iloc[0].tolist() == [0.0, 0.0]
    assert curve.iloc[-1].tolist() == pytest.approx([1.0, 1.0])
    assert curve["producer_share"].is_monotonic_increasing
    assert curve["revenue_share"].is_monotonic_increasing
    # Months in calendar order, the forecast's after the actual ones.
    ((monthly, _),) = fed_to["monthly_value"]
    assert monthly["month"].tolist() == sorted(monthly["month"]) and len(monthly) == 6
    ((forecast, backtest, *_),) = fed_to["monthly_forecast"]
    assert forecast["month"].is_monotonic_increasing and forecast["month"].is_unique
    kinds = forecast["kind"].tolist()
    assert kinds == ["actual"] * kinds.count("actual") + ["forecast"] * kinds.count("forecast")
    assert backtest["mape"].is_monotonic_increasing
    ((grid, _),) = fed_to["weekday_hour"]
    assert grid.index.tolist() == list(range(1, 8)) and grid.columns.tolist() == list(range(24))
    # Bars: the largest first, one chart's levels per dimension.
    ((levels, dimensions),) = fed_to["breakdown_bars"]
    for dimension in dimensions:
        shares = levels[levels["dimension"] == dimension]["value_share"]
        assert shares.is_monotonic_decreasing and 0 < len(shares) <= page.TOP_LEVELS_DRAWN
    for table, _, _, (share, _), _ in fed_to["share_pairs"]:
        assert table[share].is_monotonic_decreasing
    ((groups, effects, _),) = fed_to["drivers"]
    assert groups["permutation_importance"].is_monotonic_decreasing and groups["group"].is_unique
    ranks = [fed.ROLE_ORDER.index(r) for r in effects["role"]]
    assert ranks == sorted(ranks) and effects["estimate"].notna().all()
    # The lifetime checks: the holdout first, each check's groups 0, 1, ... then 6+.
    ((checks,),) = fed_to["lifetime_calibration"]
    assert checks["check"].tolist()[0] == "holdout"
    assert checks["check"].tolist() == sorted(checks["check"], key=fed.CHECK_ORDER.index)
    for _, rows in checks.groupby("check"):
        order = [fed.FREQUENCY_GROUP_ORDER.index(g) for g in rows["group"]]
        assert order == sorted(order) and len(order) == len(set(order))


def test_share_axes_tick_on_whole_percents() -> None:
    # Up to 22%, Matplotlib's default ticks step by 2.5%, which whole-percent labels print
    # as "2%", "5%", "8%": the segments chart showed them.
    figure = charts.plt.figure()
    ax = figure.add_subplot()
    ax.set_xlim(0, 0.22)
    charts.share_axis(ax.xaxis)
    ticks = [t for t in ax.get_xticks() if 0 <= t <= 0.22]
    charts.plt.close(figure)
    assert len(ticks) >= 3
    assert all(abs(t * 100 - round(t * 100)) < 1e-9 for t in ticks), ticks


def test_a_range_of_equal_shares_is_one_share() -> None:
    assert story.pct_range([0.0501, 0.0499]) == "5%"
    assert story.pct_range([0.58, 0.602]) == "58% to 60%"


def test_a_missing_tool_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_TOOLS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        missing_tool("Chromium")
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="run make tools"):
        missing_tool("Chromium")


def test_lifetime_sentences_from_hand_made_numbers() -> None:
    lifetime = {
        "horizon_months": 3,
        "horizon_end": "2016-10-01",
        "buyers": 1000,
        "patterns": 40,
        "expected_purchase_days": 250.0,
        "expected_value": 125.0,
        "purchases_model": {"r": 0.25, "alpha": 40.0, "a": 0.8, "b": 2.5},
        "holdout": {
            "start": "2016-05-01",
            "end": "2016-07-01",
            "predicted_purchase_days": 90.0,
            "actual_purchase_days": 100.0,
            "total_error": -0.1,
        },
        "spend_model": {"p": 0.4, "q": 2.0e6, "v": 1.0e6},
        "spend_frequency_correlation": 0.5,
        "max_spend_frequency_correlation": 0.3,
    }
    sentences = story.lifetime_sentences({"value_unit": "BRL", "lifetime": lifetime})
    text = " ".join(sentences)
    assert "expected to buy on 250 days, worth 125 (BRL)" in text
    assert "predicted 90 purchase days against 100 (-10.0%): a close prediction" in text
    assert "do not differ in what they typically spend" in text
    assert "Careful: spend and repeat days are correlated (+0.50)" in text
    assert "counts as alive (P(alive) = 1)" in text
    assert story.holdout_months(lifetime) == ["2016-05", "2016-06"]
    skipped = {"value_unit": "BRL", "lifetime": {"skipped": "no buyer bought on a second day"}}
    assert story.lifetime_sentences(skipped) == [
        "Lifetime value is not estimated: no buyer bought on a second day."
    ]
    assert story.lifetime_sentences({"value_unit": "BRL"}) == []


def test_planted_buyer_parameters_set_against_their_intervals() -> None:
    """r 0.3 in 0.28-0.32 misses the planted 0.25; alpha 44 in 40-48 holds 40: the fitted
    mean rate (0.3 / 44) is 9.1% over the planted (0.25 / 40), and the answer says why."""
    drivers = effect_numbers(0.14, -0.19, 0.5)
    planted = {"r": 0.25, "alpha": 40.0, "a": 0.8, "b": 2.5}
    lifetime = {
        "purchases_model": {"r": 0.3, "alpha": 44.0, "a": 0.8, "b": 2.5},
        "purchases_model_intervals": {
            "r": [0.28, 0.32],
            "alpha": [40.0, 48.0],
            "a": [0.7, 0.9],
            "b": [2.0, 3.0],
        },
        "planted": {"parameters": planted},
    }
    run = {"planted": {"programme_effect": {"log_ratio": 0.25}}, "value_unit": RELATIVE_UNIT}
    section = story.planted(run, drivers, None, {"lifetime": lifetime})
    assert section["rows"][1:] == [
        ["buyers' BG/NBD r", "0.25", "0.3 (0.28 to 0.32)", "no"],
        ["buyers' BG/NBD alpha (days)", "40", "44 (40 to 48)", "yes"],
        ["buyers' BG/NBD a", "0.8", "0.8 (0.7 to 0.9)", "yes"],
        ["buyers' BG/NBD b", "2.5", "2.5 (2 to 3)", "yes"],
    ]
    assert "Missed: buyers' BG/NBD r." in section["answer"]
    assert "r / alpha, is +9.1% off the planted one" in section["answer"]


def test_planted_categories_set_against_their_reconciled_forecast() -> None:
    # July and August simulated: A 100 + 110 = 210, inside 180-240; B 30 + 20 = 50 and C
    # 5 + 6 = 11 are forecast together as "other": 61, above its 40-60.
    after = {
        "months": [{"month": "2016-07", "value": 135.0}, {"month": "2016-08", "value": 136.0}],
        "categories": [
            {"month": "2016-07", "category": "A", "value": 100.0},
            {"month": "2016-07", "category": "B", "value": 30.0},
            {"month": "2016-07", "category": "C", "value": 5.0},
            {"month": "2016-08", "category": "A", "value": 110.0},
            {"month": "2016-08", "category": "B", "value": 20.0},
            {"month": "2016-08", "category": "C", "value": 6.0},
        ],
    }

    def series(name: str, value: float, low: float, high: float) -> dict:
        months = [{"month": "2016-07"}, {"month": "2016-08"}]
        return {
            "series": name,
            "months": months,
            "total": {"value": value, "lo95": low, "hi95": high},
        }

    grouping = {
        "series": [
            series("total", 260, 220, 300),
            series("A", 205, 180, 240),
            series("other", 55, 40, 60),
        ]
    }
    forecast = {"series": {"product_category": grouping}}
    run = {"planted": {"after_period": after}, "value_unit": RELATIVE_UNIT}
    assert story.categories_against_simulated(run, forecast) == [
        [
            "value of A in the forecast months together (reconciled; simulated)",
            "210",
            "205 (180 to 240)",
            "yes",
        ],
        [
            "value of other in the forecast months together (reconciled; simulated)",
            "61",
            "55 (40 to 60)",
            "no",
        ],
    ]
    # A truth without categories (an older generator's) or a run without the grouping: none.
    assert (
        story.categories_against_simulated({**run, "planted": {"after_period": {}}}, forecast) == []
    )
    assert story.categories_against_simulated(run, {"series": {}}) == []
