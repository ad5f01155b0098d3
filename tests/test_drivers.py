"""Q4: the product table by hand, the model and importance on constructed data, planted effects."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.analysis import drivers
from hotmart_spark.config import Config
from hotmart_spark.transforms.products import device_share_column, group_medians, product_table
from hotmart_spark.transforms.revenue import ValueScale, with_value
from tests.conftest import loaded, purchase

PERIOD_START = dt.date(2016, 1, 1)
PERIOD = (PERIOD_START, dt.date(2016, 6, 30))


def valued(spark: SparkSession, rows: list[dict]) -> DataFrame:
    """Purchases whose value is their purchase_value."""
    return with_value(loaded(spark, rows), ValueScale(0.0, 1.0, "units"), 0.1)


@pytest.fixture(scope="module")
def products(spark: SparkSession) -> dict[int, dict]:
    """Product 10 (producer 7) sells three times, the third after its first two sales; product
    20 (producer 7) and product 30 (producer 8) once each."""
    created_10 = dt.datetime(2015, 12, 1)
    rows = [
        purchase(1, **{s.PRODUCT_ID: 10, s.PRODUCER_ID: 7, s.AFFILIATE_ID: 7,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 3, 10), s.PRODUCT_CREATION_DATE: created_10,
                       s.PURCHASE_VALUE: 2.0, s.PURCHASE_DEVICE: "Desktop", s.PURCHASE_ORIGIN: "O1",
                       s.IS_SOCIAL: 1}),
        purchase(2, **{s.PRODUCT_ID: 10, s.PRODUCER_ID: 7, s.AFFILIATE_ID: 900, s.COMMISSION: 40.0,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 3, 11), s.PRODUCT_CREATION_DATE: created_10,
                       s.PURCHASE_VALUE: 4.0, s.PURCHASE_DEVICE: "Tablet", s.PURCHASE_ORIGIN: "O2"}),
        purchase(3, **{s.PRODUCT_ID: 10, s.PRODUCER_ID: 7, s.AFFILIATE_ID: 901, s.COMMISSION: 40.0,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 9), s.PRODUCT_CREATION_DATE: created_10,
                       s.PURCHASE_VALUE: 100.0, s.PURCHASE_DEVICE: "Cellphone", s.PURCHASE_ORIGIN: "O3"}),
        purchase(4, **{s.PRODUCT_ID: 20, s.PRODUCER_ID: 7, s.AFFILIATE_ID: 7,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 5), s.PRODUCT_CREATION_DATE: dt.datetime(2016, 1, 2),
                       s.PURCHASE_VALUE: 1.0, s.PURCHASE_DEVICE: "Smart TV", s.PURCHASE_ORIGIN: "O1"}),
        purchase(5, **{s.PRODUCT_ID: 30, s.PRODUCER_ID: 8, s.AFFILIATE_ID: 8,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 4), s.PURCHASE_VALUE: 5.0}),
    ]  # fmt: skip
    table = product_table(valued(spark, rows), PERIOD, early_sales=2)
    return {r[s.PRODUCT_ID]: r.asDict() for r in table.collect()}


def test_what_the_effect_estimate_reads_from_the_first_sale(products: dict[int, dict]) -> None:
    # Product 10: first sale direct at 2.0, its second (of 2 early sales) through an
    # affiliate; on sale the whole period, January to June 2016: 31+29+31+30+31+30 = 182 days.
    p = products[10]
    assert (p["first_sale_affiliate"], p["first_sale_value"]) == (False, 2.0)
    assert (p["later_early_sale_affiliate"], p["sales_after_first"], p["days_on_sale"]) == (
        True,
        2,
        182,
    )
    # Product 20, created 2 January: 181 days; one sale, too few to show a later affiliate.
    p = products[20]
    assert (p["later_early_sale_affiliate"], p["sales_after_first"], p["days_on_sale"]) == (
        False,
        0,
        181,
    )


def test_totals_cover_every_sale(products: dict[int, dict]) -> None:
    p = products[10]
    assert (p["units"], p["revenue"], p["log_units"]) == (3, 106.0, pytest.approx(math.log(3)))
    assert (p["first_sale_day"], p["creation_month"]) == (dt.date(2016, 1, 3), "2015-12")
    # 1 December 2015 to 3 January 2016; to the period start, 31 days.
    assert (p["age_at_first_sale_days"], p["age_at_period_start_days"]) == (33, 31)
    # Created on 2 January, inside the period: a negative age at its start.
    assert products[20]["age_at_period_start_days"] == -1


def test_features_come_from_the_first_sales_only(products: dict[int, dict]) -> None:
    p = products[10]
    # The first two sales: values 2 and 4 (the lower middle of two), one through affiliate
    # 900 at 40%, one from a social network, one Desktop and one Tablet, origins O1 and O2.
    # The third sale (100, Cellphone, affiliate 901, O3) counts in units and revenue only.
    assert p["feature_sales"] == 2
    assert p["price_level"] == 2.0
    assert (p["mean_commission"], p["affiliate_programme"]) == (20.0, True)
    assert (p["affiliate_share"], p["affiliates"]) == (0.5, 1)
    assert (p["social_share"], p["origins"]) == (0.5, 2)
    assert p[device_share_column("Desktop")] == 0.5
    assert p[device_share_column("Tablet")] == 0.5
    assert p[device_share_column("Cellphone")] == 0.0
    single = products[20]
    assert (single["feature_sales"], single["affiliate_programme"], single["affiliates"]) == (
        1,
        False,
        0,
    )
    assert single[device_share_column("Smart TV")] == 1.0


def test_producer_size_leaves_the_product_out(products: dict[int, dict]) -> None:
    # Producer 7: product 10 (3 units, 106) and product 20 (1 unit, 1).
    assert (
        products[10]["producer_other_units"],
        products[10]["producer_other_revenue"],
        products[10]["producer_other_products"],
    ) == (1, 1.0, 1)
    assert (
        products[20]["producer_other_units"],
        products[20]["producer_other_revenue"],
        products[20]["producer_other_products"],
    ) == (3, 106.0, 1)
    assert (products[30]["producer_other_units"], products[30]["producer_other_products"]) == (0, 0)


def test_a_one_product_producer_has_exactly_no_other_revenue(spark: SparkSession) -> None:
    # Sixty sales whose values do not add up exactly in floating point, in four partitions:
    # summed twice in different orders they differ in the last digits, and the difference
    # would grow with the product's revenue.
    rows = [
        purchase(i, **{s.PRODUCT_ID: 10, s.PRODUCER_ID: 7, s.AFFILIATE_ID: 7,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 1 + i % 28, i % 24),
                       s.PURCHASE_VALUE: 0.1 * i + 1 / (i + 3)})
        for i in range(1, 61)
    ]  # fmt: skip
    purchases = valued(spark, rows).repartition(4)
    [product] = product_table(purchases, PERIOD, early_sales=10).collect()
    assert product["units"] == 60
    assert product["producer_other_revenue"] == 0.0
    assert product["producer_other_units"] == 0


def test_group_medians(spark: SparkSession) -> None:
    table = spark.createDataFrame(
        [("A", 1, 1.0), ("A", 3, 3.0), ("A", 10, 10.0), ("B", 4, 4.0)],
        "category string, units long, revenue double",
    )
    found = {r["level"]: r.asDict() for r in group_medians(table, "category").collect()}
    assert found["A"] == {
        "feature": "category",
        "level": "A",
        "products": 3,
        "median_units": 3,
        "mean_units": pytest.approx(14 / 3),
        "revenue": 14.0,
    }
    assert found["B"]["median_units"] == 4


def test_spearman_by_hand() -> None:
    table = pd.DataFrame(
        {
            "up": [1.0, 2.0, 3.0, 4.0],
            "down": [4.0, 3.0, 1.0, 0.0],
            "flat": [7.0, 7.0, 7.0, 7.0],
            # Ranks 1.5, 1.5, 3, 4 against y's 1, 2, 3, 4: the tie shares its mean rank.
            "tied": [5, 5, 6, 8],
            "y": [1.0, 4.0, 9.0, 16.0],
        }
    )
    # Pearson of (1.5, 1.5, 3, 4) with (1, 2, 3, 4): deviations (-1, -1, 0.5, 1.5) and
    # (-1.5, -0.5, 0.5, 1.5); sum of products 4.5; sums of squares 4.5 and 5.
    assert drivers.spearman(table, ["up", "down", "flat", "tied"], "y") == {
        "up": pytest.approx(1.0),
        "down": pytest.approx(-1.0),
        "flat": None,
        "tied": pytest.approx(4.5 / math.sqrt(4.5 * 5)),
    }


def test_spearman_interval_by_hand() -> None:
    # r 0.5 over 28 products: z = atanh(0.5) = 0.5493, se = sqrt(1.125 / 25) = 0.2121;
    # tanh(0.5493 -+ 1.96 * 0.2121) = 0.1327 and 0.7465.
    low, high = drivers.spearman_interval(0.5, 28)
    assert (low, high) == (pytest.approx(0.1327, abs=1e-4), pytest.approx(0.7465, abs=1e-4))
    assert drivers.spearman_interval(None, 28) == (None, None)
    assert drivers.spearman_interval(0.3, 3) == (None, None)


def test_the_holdout_takes_whole_producers(spark: SparkSession) -> None:
    split = drivers.with_split(spark.createDataFrame(constructed_products(400, seed=2)), 0.3, 7)
    per_producer = split.groupBy(s.PRODUCER_ID).agg(
        F.countDistinct("holdout").alias("sides"), F.max(F.col("holdout").cast("int")).alias("out")
    )
    assert per_producer.where("sides > 1").count() == 0
    # About 30% of the 200 producers are held out.
    assert 40 <= per_producer.where("out = 1").count() <= 80


def test_a_group_is_shuffled_together() -> None:
    groups = drivers.importance_groups()
    assert groups["device mix"] == [
        "device_share_smart_tv",
        "device_share_tablet",
        "device_share_desktop",
        "device_share_ereaders",
        "device_share_cellphone",
    ]
    assert groups["price_level"] == ["price_level"]
    assert sorted(f for members in groups.values() for f in members) == sorted(drivers.FEATURES)


def test_r2_by_hand() -> None:
    table = pd.DataFrame({"log_units": [1.0, 2.0, 3.0], "p": [1.0, 2.0, 4.0], "q": [2.0] * 3})
    # SST around the mean 2 = 2. p: SSE = 1. q (the mean itself): SSE = 1 + 0 + 1 = 2.
    assert drivers.r2(table, ["p", "q"]) == {"p": pytest.approx(0.5), "q": pytest.approx(0.0)}


def test_baseline_is_the_training_mean_of_the_pair(spark: SparkSession) -> None:
    schema = "category string, niche string, log_units double"
    train = spark.createDataFrame(
        [("A", "x", 1.0), ("A", "x", 2.0), ("A", "x", 3.0), ("B", "y", 5.0)], schema
    )
    holdout = spark.createDataFrame([("A", "x", 0.0), ("B", "y", 0.0), ("C", "z", 0.0)], schema)
    found = {
        r["category"]: r["baseline"] for r in drivers.baseline_predictions(train, holdout).collect()
    }
    # A/x: mean of 1, 2, 3; B/y: 5; C/z unseen: the mean of all four, 11 / 4.
    assert found == {"A": 2.0, "B": 5.0, "C": 2.75}


def constructed_products(n: int, seed: int) -> pd.DataFrame:
    """Products whose log(units) is 0.5 x price_level plus small noise; every other feature is
    noise."""
    rng = np.random.default_rng(seed)
    # Two products per producer.
    frame = pd.DataFrame({s.PRODUCT_ID: np.arange(n), s.PRODUCER_ID: np.arange(n) // 2})
    for feature in drivers.NUMERIC_FEATURES:
        frame[feature] = rng.uniform(0, 10, n)
    frame["category"] = rng.choice(["A", "B", "C"], n)
    frame["niche"] = rng.choice(["w", "x", "y", "z"], n)
    frame[drivers.TARGET] = 0.5 * frame["price_level"] + rng.normal(0, 0.3, n)
    return frame


def test_importance_ranks_the_feature_that_sets_the_target_above_noise(
    spark: SparkSession, config: Config
) -> None:
    settings = dataclasses.replace(config.drivers, trees=20, holdout_share=0.3)
    products = drivers.with_split(
        spark.createDataFrame(constructed_products(800, seed=3)), settings.holdout_share, 3
    )
    model, scores, holdout_products = drivers.fit_model(products, settings)
    assert scores.n_train + scores.n_holdout == 800
    assert scores.holdout_r2 > 0.8
    assert scores.holdout_r2 > scores.baseline_r2 + 0.5
    holdout = holdout_products.select(*drivers.FEATURES, drivers.TARGET).toPandas()
    importance = drivers.permutation_importance(
        spark, model, holdout, drivers.importance_groups(), 2, 3
    )
    ranked = importance["permutation_importance"].sort_values(ascending=False)
    # price_level is a group of its own; the device shares, say, one group of five.
    assert ranked.index[0] == "price_level"
    assert "device mix" in ranked.index
    assert ranked["price_level"] > 1.0
    assert ranked.drop("price_level").abs().max() < 0.05
    impurity = drivers.impurity_importance(model)
    assert max(impurity, key=impurity.get) == "price_level"


def test_permutation_scores_a_fixed_sample_of_at_most_the_cap(spark: SparkSession) -> None:
    frame = constructed_products(30, seed=5)
    scored = spark.createDataFrame(frame.sample(frac=1.0, random_state=1))
    sample = drivers.permutation_sample(scored, max_products=10, seed=3)
    assert len(sample) == 10
    assert sample[s.PRODUCT_ID].is_monotonic_increasing
    # The same products whatever the row order, and all of them under the cap.
    again = drivers.permutation_sample(spark.createDataFrame(frame), max_products=10, seed=3)
    assert sample[s.PRODUCT_ID].tolist() == again[s.PRODUCT_ID].tolist()
    other_seed = drivers.permutation_sample(scored, max_products=10, seed=4)
    assert sample[s.PRODUCT_ID].tolist() != other_seed[s.PRODUCT_ID].tolist()
    whole = drivers.permutation_sample(scored, max_products=50, seed=3)
    assert whole[s.PRODUCT_ID].tolist() == list(range(30))


def test_modelled_products_need_the_full_window_of_first_sales(spark: SparkSession) -> None:
    frame = constructed_products(3, seed=1)
    frame["feature_sales"] = [10, 9, 10]
    frame.loc[2, "price_level"] = None
    kept = drivers.modelled_products(spark.createDataFrame(frame), early_sales=10)
    assert [r[s.PRODUCT_ID] for r in kept.collect()] == [0]


def test_too_few_products_skip_the_model_with_a_note(spark: SparkSession, config: Config) -> None:
    frame = constructed_products(30, seed=5)
    frame["units"] = np.exp(frame[drivers.TARGET]).round().astype(int) + 1
    products = drivers.with_split(spark.createDataFrame(frame), 0.2, 1)
    analysis = drivers.analyse(spark, products, n_products=45, config=config.drivers)
    assert analysis.model["note"] == (
        "only 30 products have 10 sales; the model needs drivers.min_products (100)"
    )
    assert (analysis.model["products"], analysis.model["products_modelled"]) == (45, 30)
    assert sorted(analysis.importance["feature"]) == sorted(drivers.FEATURES)
    assert analysis.importance["permutation_importance"].isna().all()


def test_importance_does_not_depend_on_row_order(spark: SparkSession, config: Config) -> None:
    settings = dataclasses.replace(
        config.drivers, trees=5, max_depth=3, min_products=10, permutation_repeats=2
    )
    frame = constructed_products(300, seed=8)
    frame["units"] = np.exp(frame[drivers.TARGET]).round().astype(int) + 1

    def importance(rows: pd.DataFrame) -> pd.DataFrame:
        # One partition each: the same rows, arriving in a different order.
        products = drivers.with_split(spark.createDataFrame(rows).coalesce(1), 0.3, 1)
        return drivers.analyse(spark, products, 300, settings).importance

    shuffled = frame.sample(frac=1.0, random_state=4).reset_index(drop=True)
    pd.testing.assert_frame_equal(importance(frame), importance(shuffled))
