"""Q1's bootstrap: the copies arithmetic by hand, the Poisson(1) weights, and intervals
against producer revenue drawn from a lognormal whose top shares and Gini are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from scipy import stats

from hotmart_spark.transforms.bootstrap import (
    bias_corrected_interval,
    concentration_of_copies,
    poisson_one,
    replicate_concentration,
)
from hotmart_spark.transforms.draws import uniform
from hotmart_spark.transforms.ranking import concentration, rank_desc


def test_concentration_of_copies_by_hand(spark: SparkSession) -> None:
    # Values 5, 3, 1 with 2, 0 and 1 copies: the sample 5, 5, 1 (n = 3, S = 11). Ranked
    # from the top, sum(j x_j) = 5 + 10 + 3 = 18 and Gini = (4 * 11 - 2 * 18) / (3 * 11).
    # The top 34% are the first ceil(1.02) = 2 copies: 10 of 11. The top 1%: one copy, 5.
    weighted = spark.createDataFrame(
        [(0, 1, 5.0, 2), (0, 2, 3.0, 0), (0, 3, 1.0, 1)], ["g", "rank", "v", "copies"]
    )
    row = concentration_of_copies(weighted, "v", ["g"], top_shares=(0.34, 0.01)).first()
    assert row["n"] == 3 and row["total"] == 11.0
    assert row["gini"] == pytest.approx(8 / 33)
    assert row["top_34pct"] == pytest.approx(10 / 11)
    assert row["top_1pct"] == pytest.approx(5 / 11)


def test_one_copy_of_every_row_is_the_point_estimate(spark: SparkSession) -> None:
    values = spark.createDataFrame([(i, float(i * i % 17 + 1)) for i in range(60)], ["id", "v"])
    ranked = rank_desc(values, "v", "id")
    point = concentration(ranked, "v").first()
    once = concentration_of_copies(
        ranked.withColumn("g", F.lit(0)).withColumn("copies", F.lit(1)), "v", ["g"]
    ).first()
    for measure in ("n", "total", "gini", "top_1pct", "top_5pct", "top_10pct", "top_20pct"):
        assert once[measure] == pytest.approx(point[measure]), measure


def test_poisson_one_weights(spark: SparkSession) -> None:
    draws = spark.range(40_000).select(poisson_one(uniform(7, "test", F.col("id"))).alias("w"))
    counts = draws.groupBy("w").count().toPandas().set_index("w")["count"] / 40_000
    # Poisson(1): P(0) = P(1) = e^-1, P(2) = e^-1 / 2; mean and variance 1 (sd of a share
    # of 40,000 draws about 0.0024).
    assert counts[0] == pytest.approx(math.exp(-1), abs=0.01)
    assert counts[1] == pytest.approx(math.exp(-1), abs=0.01)
    assert counts[2] == pytest.approx(math.exp(-1) / 2, abs=0.01)
    mean = float((counts * counts.index).sum())
    variance = float((counts * counts.index**2).sum()) - mean**2
    assert mean == pytest.approx(1.0, abs=0.02) and variance == pytest.approx(1.0, abs=0.03)


def test_bias_corrected_interval() -> None:
    replicates = np.arange(1.0, 1001.0)
    # Half the replicates below the estimate: the plain 2.5% and 97.5% quantiles.
    assert bias_corrected_interval(replicates, 500.5) == pytest.approx((25.975, 975.025))
    # 691.5 leaves 691 of 1,000 below: z0 = Phi^-1(0.691), 0.5 by the normal table
    # (Phi(0.5) = 0.6915), so the ends are near the Phi(1 - 1.96) = 0.168 and Phi(2.96) =
    # 0.998 quantiles: 1 + 0.168 * 999 = 168.8 and 1 + 0.998 * 999 = 998.
    low, high = bias_corrected_interval(replicates, 691.5)
    assert low == pytest.approx(168.8, abs=1.0) and high == pytest.approx(998.0, abs=1.0)
    # An estimate above every replicate keeps finite ends.
    assert bias_corrected_interval(replicates, 2000.0)[1] <= 1000.0


@pytest.mark.planted
def test_bootstrap_spread_matches_the_spread_between_platforms(spark: SparkSession) -> None:
    # 40 platforms of 500 producers, revenue lognormal(0, 1): Gini 2 Phi(1 / sqrt 2) - 1,
    # top-p share 1 - Phi(Phi^-1(1 - p) - 1). The bootstrap's spread within a platform has
    # to match the spread of the estimates between platforms, and its 95% intervals have to
    # hold the truth in at least 32 of 40 (88% in a 100-platform simulation; below 80% is
    # more than chance).
    sigma, producers, platforms = 1.0, 500, 40
    rng = np.random.default_rng(2016)
    revenue = rng.lognormal(0.0, sigma, (platforms, producers))
    rows = [(p, i, float(revenue[p, i])) for p in range(platforms) for i in range(producers)]
    table = spark.createDataFrame(rows, "platform int, producer_id long, revenue double")
    ranked = rank_desc(table, "revenue", "producer_id", group_by=["platform"]).cache()
    replicated = replicate_concentration(
        ranked, "revenue", "producer_id", 100, 11, group_by=["platform"]
    ).cache()
    point = concentration(ranked, "revenue", ["platform"]).toPandas().set_index("platform")
    spread = replicated.groupBy("platform").agg(
        F.stddev("gini").alias("gini"), F.stddev("top_5pct").alias("top_5pct")
    )
    spread_pd: pd.DataFrame = spread.toPandas().set_index("platform")
    drawn = replicated.select("platform", "gini", "top_5pct").toPandas().groupby("platform")
    truth = {
        "gini": 2 * stats.norm.cdf(sigma / math.sqrt(2)) - 1,
        "top_5pct": 1 - stats.norm.cdf(stats.norm.ppf(0.95) - sigma),
    }
    for measure, true_value in truth.items():
        ratio = spread_pd[measure].mean() / point[measure].std()
        assert 0.75 < ratio < 1.33, (measure, ratio)
        held = 0
        for platform, replicates in drawn:
            low, high = bias_corrected_interval(replicates[measure], point.at[platform, measure])
            held += low <= true_value <= high
        assert held >= 32, (measure, held)
    ranked.unpersist()
    replicated.unpersist()
