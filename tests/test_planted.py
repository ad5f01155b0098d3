"""The programme effect against the generator's planted truth, over several seeds.

Slow (about a minute and a half): five generated logs of 200,000 rows, each through the
product table and every estimator. Marked `planted`; `make test-fast` leaves it out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Seeded:
    estimates: dict[str, effects.Estimate]  # one per role: the GLM's placebo, not AIPW's
    oracle: float  # the headline's GLM on the true programme flag, no correction needed


def estimated(spark: SparkSession, seed: int) -> Seeded:
    sizes = generate.Sizes.for_rows(ROWS)
    catalogue = generate.products(spark, sizes, seed, START, END, PLANTED).cache()
    world = generate.buyers(spark, catalogue, sizes.rows, seed, START, END, months_after=0)
    rows = generate.standardised(
        generate.purchases_of(spark, catalogue, sizes, seed, START, END, world)
    )
    z_min = rows.agg(F.min(s.PURCHASE_VALUE)).first()[0]
    valued = rows.withColumn("value", F.col(s.PURCHASE_VALUE) - z_min)
    frame = (
        product_table(valued, (START, END), early_sales=10)
        .join(generate.truth_products(catalogue), s.PRODUCT_ID)
        .select(*effects.COLUMNS, "later_early_sale_affiliate", "programme")
        .orderBy(s.PRODUCT_ID)
        .toPandas()
    )
    world.table.unpersist()
    catalogue.unpersist()
    result = effects.estimate_effect(frame, seed)
    assert not result.note, result.note
    truth = effects.design(frame).assign(**{effects.TREATMENT: frame["programme"].astype(int)})
    oracle, _, _ = effects.glm_effect(
        truth, effects.TREATMENT, True, result.sensitivity["dispersion_alpha"]
    )
    by_role = {e.role: e for e in result.estimates if not e.method.startswith("placebo: AIPW")}
    return Seeded(by_role, oracle)


@pytest.fixture(scope="module")
def results(spark: SparkSession) -> dict[int, Seeded]:
    return {seed: estimated(spark, seed) for seed in SEEDS}


def covers(e: effects.Estimate, value: float) -> bool:
    low = -float("inf") if e.ci_low != e.ci_low else e.ci_low
    high = float("inf") if e.ci_high != e.ci_high else e.ci_high
    return low <= value <= high


def test_the_headline_interval_covers_the_planted_effect(results: dict) -> None:
    hits = [covers(r.estimates["headline"], PLANTED) for r in results.values()]
    assert sum(hits) >= 4, {seed: r.estimates["headline"] for seed, r in results.items()}


def test_the_bias_left_by_the_first_sale_treatment_is_small(results: dict) -> None:
    # The same data with the true programme flag: what reading the treatment from the first
    # sale and correcting for dilution costs, seed by seed on the same products.
    # Each gap is mostly noise (the correction scales a noisy difference); their mean is
    # the bias: -0.03 over these seeds, where the uncorrected estimate's is -0.09.
    gaps = [r.estimates["headline"].estimate - r.oracle for r in results.values()]
    assert abs(sum(gaps) / len(gaps)) < 0.1, gaps


def test_the_unadjusted_ratio_overstates_it(results: dict) -> None:
    # Programmes go where demand is high for observed reasons, so a comparison without
    # controls reads high. At this size its interval is too wide to miss the planted value
    # in most seeds (it does at the demo's 1.6M rows); the bias shows in the estimates.
    naive = [r.estimates["naive"].estimate for r in results.values()]
    headline = [r.estimates["headline"].estimate for r in results.values()]
    assert sum(n > PLANTED for n in naive) >= 4, naive
    assert sum(naive) / len(naive) > sum(headline) / len(headline) + 0.15, (naive, headline)


def test_the_placebo_centres_on_zero(results: dict) -> None:
    for seed, r in results.items():
        placebo = r.estimates["placebo"]
        assert covers(placebo, 0.0), (seed, placebo)
        assert abs(placebo.estimate) < 0.2, (seed, placebo)
