from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sklearn.metrics import silhouette_score

from hotmart_spark import schema as s
from hotmart_spark.transforms import clusters
from hotmart_spark.transforms.revenue import ValueScale, with_value
from tests.conftest import loaded, purchase

# Three kinds of producer, far apart on every feature: (units, avg value, affiliate share,
# shares of the three largest categories, growth index).
GROUPS = {
    0: (1, 10.0, 0.0, 1.0, 0.0, 0.0, -0.8),
    1: (40, 50.0, 0.5, 0.0, 1.0, 0.0, 0.0),
    2: (2_000, 250.0, 1.0, 0.0, 0.0, 1.0, 0.8),
}


def constructed(spark: SparkSession, per_group: int = 12) -> DataFrame:
    rows = []
    for group, base in GROUPS.items():
        for i in range(per_group):
            wobble = 1 + 0.02 * (i % 4)
            units, avg, share, first, second, third, growth = base
            rows.append(
                (group * 100 + i, units * avg * wobble, units, avg * wobble, share, first,
                 second, third, growth)
            )  # fmt: skip
    return spark.createDataFrame(rows, [s.PRODUCER_ID, "revenue", *clusters.FEATURES])


def test_well_separated_groups_are_found_with_the_right_k(spark: SparkSession) -> None:
    result = clusters.cluster_producers(
        constructed(spark), range(2, 6), seed=1, fit_max_producers=1000
    )
    assert result.k == 3
    assert [k for k, _ in result.scores] == [2, 3, 4, 5]
    assert max(result.scores, key=lambda ks: ks[1])[0] == 3
    pairs = {(r[s.PRODUCER_ID] // 100, r["cluster"]) for r in result.assigned.collect()}
    # Each constructed group lands in exactly one cluster, and no cluster holds two groups.
    assert len(pairs) == 3
    assert len({group for group, _ in pairs}) == len({cluster for _, cluster in pairs}) == 3


def test_a_fit_on_some_producers_assigns_every_producer(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    features = constructed(spark)
    with caplog.at_level(logging.INFO, logger="hotmart_spark.transforms.clusters"):
        result = clusters.cluster_producers(features, range(3, 4), seed=1, fit_max_producers=18)
    assert "k-means fitted on 18 of 36 producers" in caplog.text
    assigned = result.assigned.collect()
    assert len(assigned) == 36
    # The 18 others joined their nearest centroid: still one cluster per constructed group.
    pairs = {(r[s.PRODUCER_ID] // 100, r["cluster"]) for r in assigned}
    assert len(pairs) == 3 and len({cluster for _, cluster in pairs}) == 3


def test_silhouette_by_hand() -> None:
    # Points 0, 1 (cluster 0) and 4, 6 (cluster 1) on a line; squared distances.
    # Point 0: a = 1 (to 1), b = (16 + 36) / 2 = 26, s = 25/26. Point 1: a = 1, b = (9 + 25) / 2
    # = 17, s = 16/17. Point 4: a = 4 (to 6), b = (16 + 9) / 2 = 12.5, s = 8.5/12.5. Point 6:
    # a = 4, b = (36 + 25) / 2 = 30.5, s = 26.5/30.5.
    points = np.array([[0.0], [1.0], [4.0], [6.0]])
    expected = (25 / 26 + 16 / 17 + 8.5 / 12.5 + 26.5 / 30.5) / 4
    assert clusters.silhouette(points, np.array([0, 0, 1, 1])) == pytest.approx(expected)
    # A point alone in its cluster scores 0: point 6 alone; 0, 1, 4 together (a of point 0 =
    # (1 + 16) / 2 = 8.5, b = 36; point 1: a = (1 + 9) / 2 = 5, b = 25; point 4: a = 12.5, b = 4).
    alone = (27.5 / 36 + 20 / 25 + (4 - 12.5) / 12.5 + 0) / 4
    assert clusters.silhouette(points, np.array([0, 0, 0, 1])) == pytest.approx(alone)


def test_silhouette_matches_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    points = rng.normal(size=(300, 4))
    labels = rng.integers(0, 5, size=300)
    expected = silhouette_score(points, labels, metric="sqeuclidean")
    assert clusters.silhouette(points, labels) == pytest.approx(expected, rel=1e-9)


def test_nearest_centroid(spark: SparkSession) -> None:
    points = spark.createDataFrame(
        [(1, 0.9, 0.9), (2, 1.1, 1.1), (3, 1.0, 1.0), (4, 5.0, -1.0)], "id int, x double, y double"
    )
    centers = [(0.0, 0.0), (2.0, 2.0), (6.0, 0.0)]
    nearest = clusters.nearest_centroid([F.col("x"), F.col("y")], centers)
    got = {r["id"]: r["cluster"] for r in points.select("id", nearest.alias("cluster")).collect()}
    # (0.9, 0.9): 1.62 from center 0, 2.42 from center 1. (1.1, 1.1): 2.42 and 1.62.
    # (1, 1): 2 from both, so the lower number. (5, -1): 26, 18 and 2.
    assert got == {1: 0, 2: 1, 3: 0, 4: 2}


def test_too_few_producers_make_one_cluster(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    two = constructed(spark, per_group=1).where(f"{s.PRODUCER_ID} < 200")
    with caplog.at_level(logging.WARNING, logger="hotmart_spark.transforms.clusters"):
        result = clusters.cluster_producers(two, range(2, 5), seed=1, fit_max_producers=1000)
    assert result.k == 1 and result.scores == []
    assert {r["cluster"] for r in result.assigned.collect()} == {0}
    assert "only 2 producers" in caplog.text


def test_profiles_and_labels(spark: SparkSession) -> None:
    features = constructed(spark)
    result = clusters.cluster_producers(features, range(3, 4), seed=1, fit_max_producers=1000)
    profiles = [r.asDict() for r in clusters.cluster_profiles(result.assigned).collect()]
    assert [p["producers"] for p in profiles] == [12, 12, 12]
    by_growth = sorted(profiles, key=lambda p: p["median_growth_index"])
    # Group 2 alone: 12 * 2,000 * 250 * mean wobble 1.03 of the value of all three groups.
    total = sum(12 * base[0] * base[1] * 1.03 for base in GROUPS.values())
    assert by_growth[2]["value_share"] == pytest.approx(12 * 500_000 * 1.03 / total)
    # Medians of each group: units 1, 40, 2,000; value per sale 10, 50 or 250 times a
    # wobble of 1, 1.02, 1.04 or 1.06 (the approximate median is the 6th of 12: 1.02).
    assert [p["median_units"] for p in by_growth] == [1, 40, 2000]
    assert [p["median_avg_value_per_sale"] for p in by_growth] == pytest.approx([10.2, 51, 255])
    overall = clusters.overall_medians(features)
    # All 36 producers: the 18th of the sorted units (1 x 12, 40 x 12, ...) is 40; of the
    # values per sale, group 1's sixth, 51.
    assert (overall["units"], overall["avg_value_per_sale"]) == (40, pytest.approx(51.0))
    categories = ["Phisical book", "Podcast", "eBook"]
    labels = [clusters.label(p, overall, categories) for p in by_growth]
    # Group 0: 1 unit against 40 (small), no affiliate sales (direct), all units in the
    # first category, 10.2 per sale against 51 (low-priced), growth -0.8 (shrinking).
    assert labels == [
        "small, direct, mostly Phisical book, low-priced, shrinking",
        "mid-size, affiliate-driven, mostly Podcast, mid-priced, steady",
        "large, affiliate-driven, mostly eBook, high-priced, growing",
    ]
    mixed = {**by_growth[1], "median_category_share_2": 0.4}
    assert "mixed categories" in clusters.label(mixed, overall, categories)
    assert clusters.unique_labels(["a", "b", "a", "a"]) == ["a", "b", "a (2)", "a (3)"]


def test_structure_in_words() -> None:
    # Kaufman and Rousseeuw's bands: above 0.7 strong, 0.5 reasonable, 0.25 weak.
    assert [clusters.structure_in_words(x) for x in (0.8, 0.63, 0.43, 0.2)] == [
        "strong",
        "reasonable",
        "weak",
        "no substantial",
    ]


def test_producer_features(spark: SparkSession) -> None:
    rows = [
        purchase(1, **{s.PURCHASE_DATE: dt.datetime(2016, 1, 10), s.PURCHASE_VALUE: 10.0,
                       s.PRODUCT_CATEGORY: "Podcast"}),
        purchase(2, **{s.PURCHASE_DATE: dt.datetime(2016, 1, 12), s.PURCHASE_VALUE: 20.0,
                       s.PRODUCT_CATEGORY: "Podcast"}),
        purchase(3, **{s.PURCHASE_DATE: dt.datetime(2016, 1, 20), s.PURCHASE_VALUE: 30.0,
                       s.PRODUCT_CATEGORY: "eBook", s.AFFILIATE_ID: 8, s.COMMISSION: 40.0}),
        purchase(4, **{s.PRODUCER_ID: 9, s.AFFILIATE_ID: 9, s.PURCHASE_VALUE: 5.0}),
    ]  # fmt: skip
    purchases = with_value(loaded(spark, rows), ValueScale(0.0, 1.0, "test"), 0.1)
    categories = clusters.largest_categories(purchases)
    # Podcast 3 units (producer 9's purchase has the fixture's default, Podcast), eBook 1:
    # two categories, so the third share is 0 for everyone.
    assert categories == ["Podcast", "eBook"]
    got = {
        r[s.PRODUCER_ID]: r.asDict()
        for r in clusters.producer_features(purchases, categories).collect()
    }
    # Producer 7 sold on days 10, 12 and 20 of January: mean 14, first 10, last 20, so
    # growth = (28 - 10 - 20) / 10 = -0.2 (its units lean to its first days).
    assert got[7] == {
        s.PRODUCER_ID: 7,
        "revenue": 60.0,
        "units": 3,
        "avg_value_per_sale": 20.0,
        "affiliate_units_share": pytest.approx(1 / 3),
        "category_share_1": pytest.approx(2 / 3),
        "category_share_2": pytest.approx(1 / 3),
        "category_share_3": 0.0,
        "growth_index": pytest.approx(-0.2),
    }
    # Producer 9 sold on one day: no span, growth 0.
    assert got[9]["growth_index"] == 0.0
