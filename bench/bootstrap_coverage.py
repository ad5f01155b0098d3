"""How often Q1's 95% bootstrap intervals hold the truth, on platforms whose producer
revenue is lognormal (Gini 2 Phi(sigma / sqrt 2) - 1, top-p share
1 - Phi(Phi^-1(1 - p) - sigma)). Prints, per setting and measure, the share of platforms
whose bias-corrected and plain percentile intervals held the truth, and the bootstrap's
spread over the spread of the estimates between platforms.

    PYSPARK_PYTHON=$PWD/.venv/bin/python .venv/bin/python bench/bootstrap_coverage.py
"""

from __future__ import annotations

import math

import numpy as np
from pyspark.sql import SparkSession
from scipy import stats

from hotmart_spark.transforms.bootstrap import bias_corrected_interval, replicate_concentration
from hotmart_spark.transforms.ranking import concentration, rank_desc

# (sigma, producers per platform, platforms)
SETTINGS = ((1.0, 500, 100), (2.0, 2000, 60))
REPLICATES = 200


def main() -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.sql.shuffle.partitions", 4)
        .config("spark.ui.enabled", False)
        .config("spark.ui.showConsoleProgress", False)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    for sigma, producers, platforms in SETTINGS:
        rng = np.random.default_rng(int(sigma * 10 + producers) + 5)
        revenue = rng.lognormal(0.0, sigma, (platforms, producers))
        rows = [(p, i, float(revenue[p, i])) for p in range(platforms) for i in range(producers)]
        table = spark.createDataFrame(rows, "platform int, producer_id long, revenue double")
        ranked = rank_desc(table, "revenue", "producer_id", group_by=["platform"]).cache()
        replicated = replicate_concentration(
            ranked, "revenue", "producer_id", REPLICATES, 7, group_by=["platform"]
        ).toPandas()
        point = concentration(ranked, "revenue", ["platform"]).toPandas().set_index("platform")
        truth = {
            "gini": 2 * stats.norm.cdf(sigma / math.sqrt(2)) - 1,
            **{
                f"top_{p * 100:g}pct": 1 - stats.norm.cdf(stats.norm.ppf(1 - p) - sigma)
                for p in (0.05, 0.2)
            },
        }
        for measure, true_value in truth.items():
            corrected = plain = 0
            for platform, drawn in replicated.groupby("platform"):
                values = drawn[measure].to_numpy()
                low, high = bias_corrected_interval(values, point.at[platform, measure])
                corrected += low <= true_value <= high
                low, high = np.quantile(values, [0.025, 0.975])
                plain += low <= true_value <= high
            spread = replicated.groupby("platform")[measure].std().mean() / point[measure].std()
            print(
                f"sigma {sigma:g}, {producers} producers, {platforms} platforms, {measure}: "
                f"truth {true_value:.3f}; held {corrected / platforms:.0%} "
                f"(plain percentile {plain / platforms:.0%}); spread ratio {spread:.2f}"
            )
        ranked.unpersist()


if __name__ == "__main__":
    main()
