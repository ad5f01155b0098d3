"""Buyer RFM on ten hand-made buyers; every expected number is worked out here.

Buyer i (1..10) last bought i days before the reference day (Mar 11, the day after the last
purchase day, Mar 10), spent 10 * i in all, and bought once (buyers 1-6), twice (7, 8),
three times (9) or five times (10).
"""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.config import load_config
from hotmart_spark.transforms import rfm
from hotmart_spark.transforms.revenue import ValueScale, with_value
from tests.conftest import loaded, purchase

FREQUENCY = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2, 9: 3, 10: 5}
LAST_DAY = dt.date(2016, 3, 10)


@pytest.fixture(scope="module")
def purchases(spark: SparkSession) -> DataFrame:
    rows, purchase_id = [], 0
    for buyer, times in FREQUENCY.items():
        last = dt.datetime.combine(LAST_DAY, dt.time(12)) - dt.timedelta(days=buyer - 1)
        for k in range(times):
            purchase_id += 1
            rows.append(
                purchase(
                    purchase_id,
                    **{
                        s.BUYER_ID: buyer,
                        s.PURCHASE_DATE: last - dt.timedelta(days=7 * k),
                        s.PURCHASE_VALUE: 10.0 * buyer / times,
                        s.PRODUCT_CATEGORY: "eBook" if buyer == 10 else "Podcast",
                    },
                )
            )
    return with_value(loaded(spark, rows), ValueScale(0.0, 1.0, "test"), 0.1).cache()


@pytest.fixture(scope="module")
def scored(purchases: DataFrame) -> DataFrame:
    values = rfm.buyer_rfm(purchases, rfm.reference_day(purchases))
    segments = load_config().rfm.segments
    tiers = load_config().rfm.frequency_tiers
    return rfm.with_scores(values, rfm.recency_cuts(values), tiers).withColumn(
        "segment", rfm.segment(segments)
    )


def test_reference_day_and_values(purchases: DataFrame) -> None:
    reference = rfm.reference_day(purchases)
    assert reference == dt.date(2016, 3, 11)
    values = {r[s.BUYER_ID]: r for r in rfm.buyer_rfm(purchases, reference).collect()}
    assert [(values[b]["recency"], values[b]["frequency"]) for b in (1, 9, 10)] == [
        (1, 1),
        (9, 3),
        (10, 5),
    ]
    assert [values[b]["monetary"] for b in range(1, 11)] == pytest.approx(
        [10.0 * b for b in range(1, 11)]
    )


def test_recency_cuts(purchases: DataFrame) -> None:
    values = rfm.buyer_rfm(purchases, dt.date(2016, 3, 11))
    # percentile_approx of 10 values at p is the ceil(10 p)-th smallest: the 2nd, 4th, 6th, 8th.
    assert rfm.recency_cuts(values) == [2.0, 4.0, 6.0, 8.0]


def test_scores(scored: DataFrame) -> None:
    got = {r[s.BUYER_ID]: (r["r_score"], r["f_score"]) for r in scored.collect()}
    # R: 1 + cuts (2, 4, 6, 8) above the recency. F, tiers 2, 3, 4, 6: one purchase 1,
    # two 2, three 3, five 4 (reaches 2, 3 and 4, not 6).
    assert got == {
        1: (5, 1),
        2: (4, 1),
        3: (4, 1),
        4: (3, 1),
        5: (3, 1),
        6: (2, 1),
        7: (2, 2),
        8: (1, 2),
        9: (1, 3),
        10: (1, 4),
    }
    assert "m_score" not in scored.columns


def test_quintile_cuts_would_leave_frequency_scores_empty(spark: SparkSession) -> None:
    # 76% buy once, as in the 2016 layout: quintile cuts of frequency are 1, 1, 1, 2, so
    # scores 2 and 3 could never occur; the tiers give every score a buyer.
    counts = [1] * 76 + [2] * 15 + [3] * 5 + [4] * 2 + [5] * 1 + [7] * 1
    df = spark.createDataFrame([(c,) for c in counts], ["frequency"])
    cuts = df.agg(F.percentile_approx("frequency", rfm.QUINTILES, 10_000)).first()[0]
    assert cuts == [1, 1, 1, 2]
    scores = df.select(rfm.frequency_score(load_config().rfm.frequency_tiers).alias("f"))
    by_score = {r["f"]: r["count"] for r in scores.groupBy("f").count().collect()}
    assert by_score == {1: 76, 2: 15, 3: 5, 4: 3, 5: 1}


def test_segments_of_the_buyers(scored: DataFrame) -> None:
    got = {r[s.BUYER_ID]: r["segment"] for r in scored.collect()}
    assert got == {
        1: "New",
        2: "Promising",
        3: "Promising",
        4: "About to sleep",
        5: "About to sleep",
        6: "Hibernating",
        7: "Hibernating",
        8: "Hibernating",
        9: "At risk",
        10: "At risk",
    }


def test_segment_map_on_chosen_scores(spark: SparkSession) -> None:
    codes = [(5, 5), (4, 4), (3, 3), (5, 2), (1, 1), (2, 2), (1, 5), (2, 3)]
    df = spark.createDataFrame(codes, ["r_score", "f_score"])
    got = [r[0] for r in df.select(rfm.segment(load_config().rfm.segments)).collect()]
    assert got == [
        "Champions",
        "Loyal",
        "Need attention",
        "Potential loyalists",
        "Lost",
        "Hibernating",
        "Can't lose them",
        "At risk",
    ]
    every_code = spark.createDataFrame(
        [(r, f) for r in range(1, 6) for f in range(1, 6)], ["r_score", "f_score"]
    )
    unnamed = every_code.select(rfm.segment(load_config().rfm.segments).alias("s")).where(
        F.col("s") == rfm.UNSEGMENTED
    )
    assert unnamed.count() == 0


def test_segment_summary(scored: DataFrame) -> None:
    summary = {r["segment"]: r for r in rfm.segment_summary(scored).collect()}
    at_risk = summary["At risk"]
    # Buyers 9 and 10: 90 + 100 of 550 in all; recency 9 and 10; frequency 3 and 5.
    assert at_risk["buyers"] == 2
    assert at_risk["buyer_share"] == pytest.approx(0.2)
    assert at_risk["value_share"] == pytest.approx(190 / 550)
    assert (at_risk["mean_recency"], at_risk["mean_frequency"]) == (9.5, 4.0)
    assert at_risk["mean_monetary"] == pytest.approx(95.0)
    assert sum(r["buyer_share"] for r in summary.values()) == pytest.approx(1.0)


def test_segment_categories_as_lift(scored: DataFrame, purchases: DataFrame) -> None:
    categories = rfm.segment_categories(scored, purchases)
    got = {(r["segment"], r[s.PRODUCT_CATEGORY]): r for r in categories.collect()}
    # 18 purchases: buyer 10's 5 are eBook, the other 13 Podcast. At risk (buyers 9 and
    # 10) bought 5 eBook and 3 Podcast: eBook 5/8 against 5/18 overall, a lift of 2.25;
    # Podcast 3/8 against 13/18, 27/52.
    ebook = got[("At risk", "eBook")]
    assert (ebook["units"], ebook["share"]) == (5, pytest.approx(5 / 8))
    assert ebook["overall_share"] == pytest.approx(5 / 18)
    assert ebook["lift"] == pytest.approx(2.25)
    assert got[("At risk", "Podcast")]["lift"] == pytest.approx(27 / 52)
    # Hibernating (buyers 6, 7, 8) bought only Podcast: 1 against 13/18.
    assert got[("Hibernating", "Podcast")]["lift"] == pytest.approx(18 / 13)
    top = {r["segment"]: r for r in rfm.top_by_lift(categories).collect()}
    assert top["At risk"]["top_categories"] == ["eBook", "Podcast"]
    assert top["At risk"]["top_category_lifts"] == pytest.approx([2.25, 27 / 52])
    assert top["New"]["top_categories"] == ["Podcast"]


def test_segment_takes_the_first_matching_pattern(spark: SparkSession) -> None:
    # "55" matches both patterns and goes to the first; "11" matches neither.
    segments = {"Top row": "5[1-5]", "Best": "55"}
    names = rfm.segment_names(segments)
    assert (names[55], names[51], names[11], len(names)) == (
        "Top row",
        "Top row",
        rfm.UNSEGMENTED,
        25,
    )
    df = spark.createDataFrame([(5, 5), (1, 1)], ["r_score", "f_score"])
    assert [r[0] for r in df.select(rfm.segment(segments)).collect()] == [
        "Top row",
        rfm.UNSEGMENTED,
    ]
