"""The programme effect against the generator's planted truth, over several seeds.

Slow (about a minute and a half): five generated logs of 200,000 rows, each through the
product table and every estimator. Marked `planted`; `make test-fast` leaves it out.
"""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import generate
from hotmart_spark import schema as s
from hotmart_spark.analysis import effects
from hotmart_spark.transforms.products import product_table

pytestmark = pytest.mark.planted

START, END = dt.date(2016, 1, 1), dt.date(2016, 6, 30)
ROWS = 200_000
SEEDS = (11, 12, 13, 14, 15)
PLANTED = 0.25


def estimated(spark: SparkSession, seed: int) -> effects.Result:
    sizes = generate.Sizes.for_rows(ROWS)
    rows = generate.standardised(generate.purchases(spark, sizes, seed, START, END, PLANTED))
    z_min = rows.agg(F.min(s.PURCHASE_VALUE)).first()[0]
    valued = rows.withColumn("value", F.col(s.PURCHASE_VALUE) - z_min)
    table = product_table(valued, (START, END), early_sales=10)
    frame = (
        table.select(*effects.COLUMNS, "later_early_sale_affiliate")
        .orderBy(s.PRODUCT_ID)
        .toPandas()
    )
    return effects.estimate_effect(frame, seed)


@pytest.fixture(scope="module")
def results(spark: SparkSession) -> dict[int, dict[str, effects.Estimate]]:
    found = {}
    for seed in SEEDS:
        result = estimated(spark, seed)
        assert not result.note, result.note
        # One estimate per role: the GLM placebo over its shuffles, not AIPW's single one.
        found[seed] = {
            e.role: e for e in result.estimates if not e.method.startswith("placebo: AIPW")
        }
    return found


def covers(e: effects.Estimate, value: float) -> bool:
    low = -float("inf") if e.ci_low != e.ci_low else e.ci_low
    high = float("inf") if e.ci_high != e.ci_high else e.ci_high
    return low <= value <= high


def test_the_headline_interval_covers_the_planted_effect(results: dict) -> None:
    hits = [covers(r["headline"], PLANTED) for r in results.values()]
    assert sum(hits) >= 4, {seed: r["headline"] for seed, r in results.items()}


def test_the_unadjusted_ratio_overstates_it(results: dict) -> None:
    # Programmes go where demand is high for observed reasons, so a comparison without
    # controls reads high. At this size its interval is too wide to miss the planted value
    # in most seeds (it does at the demo's 1.6M rows); the bias shows in the estimates.
    naive = [r["naive"].estimate for r in results.values()]
    headline = [r["headline"].estimate for r in results.values()]
    assert sum(n > PLANTED for n in naive) >= 4, naive
    assert sum(naive) / len(naive) > sum(headline) / len(headline) + 0.15, (naive, headline)


def test_the_placebo_centres_on_zero(results: dict) -> None:
    for seed, r in results.items():
        assert covers(r["placebo"], 0.0), (seed, r["placebo"])
        assert abs(r["placebo"].estimate) < 0.2, (seed, r["placebo"])
