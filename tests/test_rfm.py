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
    return rfm.with_scores(values, rfm.quintile_cuts(values)).withColumn(
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


def test_quintile_cuts(purchases: DataFrame) -> None:
    values = rfm.buyer_rfm(purchases, dt.date(2016, 3, 11))
    # percentile_approx of 10 values at p is the ceil(10 p)-th smallest: the 2nd, 4th, 6th, 8th.
    # Frequencies sorted: 1 1 1 1 1 1 2 2 3 5.
    assert rfm.quintile_cuts(values) == {
        "recency": [2.0, 4.0, 6.0, 8.0],
        "frequency": [1.0, 1.0, 1.0, 2.0],
        "monetary": [20.0, 40.0, 60.0, 80.0],
    }


def test_scores_with_ties(scored: DataFrame) -> None:
    got = {r[s.BUYER_ID]: (r["r_score"], r["f_score"], r["m_score"]) for r in scored.collect()}
    # R: 1 + cuts (2, 4, 6, 8) above the recency; F and M: 1 + cuts below the value.
    # F: one purchase passes none of (1, 1, 1, 2): 1; two pass three: 4; three or five: 5.
    assert got == {
        1: (5, 1, 1),
        2: (4, 1, 1),
        3: (4, 1, 2),
        4: (3, 1, 2),
        5: (3, 1, 3),
        6: (2, 1, 3),
        7: (2, 4, 4),
        8: (1, 4, 4),
        9: (1, 5, 5),
        10: (1, 5, 5),
    }


def test_segments_of_the_buyers(scored: DataFrame) -> None:
    got = {r[s.BUYER_ID]: r["segment"] for r in scored.collect()}
    assert got == {
        1: "New",
        2: "Promising",
        3: "Promising",
        4: "About to sleep",
        5: "About to sleep",
        6: "Hibernating",
        7: "At risk",
        8: "At risk",
        9: "Can't lose them",
        10: "Can't lose them",
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


def test_segment_summary(scored: DataFrame, purchases: DataFrame) -> None:
    summary = {r["segment"]: r for r in rfm.segment_summary(scored, purchases).collect()}
    cant_lose = summary["Can't lose them"]
    # Buyers 9 and 10: 90 + 100 of 550 in all; recency 9 and 10; frequency 3 and 5.
    assert cant_lose["buyers"] == 2
    assert cant_lose["buyer_share"] == pytest.approx(0.2)
    assert cant_lose["value_share"] == pytest.approx(190 / 550)
    assert (cant_lose["mean_recency"], cant_lose["mean_frequency"]) == (9.5, 4.0)
    assert cant_lose["mean_monetary"] == pytest.approx(95.0)
    assert cant_lose["top_categories"] == ["eBook", "Podcast"]
    assert sum(r["buyer_share"] for r in summary.values()) == pytest.approx(1.0)


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
