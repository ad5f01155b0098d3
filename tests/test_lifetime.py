"""Buyer lifetime value: the collapsed tables built by hand, the fits against the published
CDNOW values, and the pipeline's numbers against the generator's planted buyers."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.analysis import lifetime as ltv
from hotmart_spark.errors import NotEnoughData
from hotmart_spark.transforms import lifetime
from tests.conftest import SmallRun


def cdnow_patterns() -> pd.DataFrame:
    """The CDNOW sample's 2,357 customers (weeks) collapsed to weighted patterns."""
    from lifetimes.datasets import load_cdnow_summary

    customers = load_cdnow_summary(index_col=[0]).rename(
        columns={"frequency": "repeat_days", "recency": "last_repeat_day", "T": "age_days"}
    )
    return customers.groupby(lifetime.PATTERN).size().reset_index(name="buyers")


def test_bgnbd_on_the_collapsed_cdnow_table_gives_the_published_values() -> None:
    """Fader, Hardie and Lee (2005), table 1: r 0.243, alpha 4.414, a 0.793, b 2.426."""
    table = cdnow_patterns()
    assert len(table) < 2357 and table["buyers"].sum() == 2357
    fitted = ltv.fit_purchases(table)
    assert {k: round(v, 3) for k, v in fitted.parameters.items()} == {
        "r": 0.243,
        "alpha": 4.414,
        "a": 0.793,
        "b": 2.426,
    }
    low, high = fitted.intervals["r"]
    assert low < 0.243 < high


def test_the_weighted_fit_on_patterns_is_the_fit_on_every_buyer() -> None:
    table = cdnow_patterns()
    one_row_each = table.loc[table.index.repeat(table["buyers"])].assign(buyers=1)
    weighted = ltv.fit_purchases(table).parameters
    unweighted = ltv.fit_purchases(one_row_each).parameters
    assert weighted == pytest.approx(unweighted, rel=1e-4)


def test_gamma_gamma_on_cdnow_gives_the_published_values() -> None:
    """Fader, Hardie and Lee (2005b) on the 946 repeat buyers: p 6.25, q 3.74, v 15.44."""
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    buyers = load_cdnow_summary_data_with_monetary_value()
    repeat = buyers[buyers["frequency"] > 0]
    table = (
        repeat.rename(columns={"frequency": "repeat_days", "monetary_value": "repeat_value"})
        .groupby(["repeat_days", "repeat_value"])
        .size()
        .reset_index(name="buyers")
    )
    assert table["buyers"].sum() == 946
    fitted = ltv.fit_spend(table).parameters
    assert fitted["p"] == pytest.approx(6.25, abs=0.01)
    assert fitted["q"] == pytest.approx(3.74, abs=0.01)
    assert fitted["v"] == pytest.approx(15.44, abs=0.02)


def test_no_repeat_buyer_is_not_enough_to_model() -> None:
    table = pd.DataFrame(
        {"repeat_days": [0, 0], "last_repeat_day": [0, 0], "age_days": [5, 9], "buyers": [3, 1]}
    )
    with pytest.raises(NotEnoughData, match="no buyer bought on a second day"):
        ltv.fit_purchases(table)


def purchases(spark: SparkSession) -> list:
    rows = [
        # buyer 1: three purchase days (two purchases on the first), the last after the end
        (1, "2016-01-01 09:00:00", 1.0),
        (1, "2016-01-01 18:00:00", 2.0),
        (1, "2016-01-05 10:00:00", 4.0),
        (1, "2016-01-10 10:00:00", 6.0),
        (1, "2016-01-20 10:00:00", 9.0),
        # buyer 2: once
        (2, "2016-01-03 12:00:00", 5.0),
        # buyer 3: only after the end
        (3, "2016-01-15 12:00:00", 5.0),
    ]
    return spark.createDataFrame(
        [(b, dt.datetime.fromisoformat(t), v) for b, t, v in rows],
        f"{s.BUYER_ID} long, {s.PURCHASE_DATE} timestamp, value double",
    )


def test_histories_count_purchase_days_by_hand(spark: SparkSession) -> None:
    days = lifetime.purchase_days(purchases(spark))
    end = dt.date(2016, 1, 11)
    history = {r[s.BUYER_ID]: r.asDict() for r in lifetime.histories(days, end).collect()}
    # Buyer 1: days Jan 1 (value 3), Jan 5 (4), Jan 10 (6) before the end: two repeats, the
    # last 9 days after the first, 10 days old; repeat spend (4 + 6) / 2.
    assert history[1] == {
        s.BUYER_ID: 1,
        "repeat_days": 2,
        "last_repeat_day": 9,
        "age_days": 10,
        "repeat_value": 5.0,
    }
    assert history[2] == {
        s.BUYER_ID: 2,
        "repeat_days": 0,
        "last_repeat_day": 0,
        "age_days": 8,
        "repeat_value": None,
    }
    assert 3 not in history
    after = lifetime.purchases_between(days, end, dt.date(2016, 2, 1))
    assert sorted(tuple(r) for r in after.collect()) == [(1, 1), (3, 1)]
    patterns = lifetime.patterns(lifetime.histories(days, end), after)
    assert sorted(tuple(r) for r in patterns.collect()) == [(0, 0, 8, 1, 0), (2, 9, 10, 1, 1)]


def test_expected_spend_by_hand(spark: SparkSession) -> None:
    """p 2, q 3, v 4: the population's mean spend is v p / (q - 1) = 4; a buyer with two
    repeats at 5 weighs its own mean by p x / (p x + q - 1) = 4 / 6."""
    buyers = spark.createDataFrame([(2, 5.0), (0, None)], "repeat_days int, repeat_value double")
    spends = [r[0] for r in buyers.select(lifetime.expected_spend(2.0, 3.0, 4.0)).collect()]
    assert spends == pytest.approx([(1 / 3) * 4 + (2 / 3) * 5, 4.0])


def test_the_calibration_groups_add_up_by_hand() -> None:
    table = pd.DataFrame(
        {
            "repeat_days": [0, 0, 1, 7, 9],
            "buyers": [10, 5, 4, 1, 1],
            "expected_purchase_days": [0.1, 0.2, 0.5, 3.0, 5.0],
            "holdout_purchase_days": [1, 2, 2, 4, 4],
        }
    )
    groups = ltv.calibration(table, "holdout_purchase_days").set_index("group")
    assert list(groups.index) == ["0", "1", "6+"]
    assert groups.loc["0", "predicted"] == pytest.approx(10 * 0.1 + 5 * 0.2)
    assert groups.loc["0", "actual"] == 3
    assert groups.loc["6+", "predicted_per_buyer"] == pytest.approx(4.0)
    assert groups.loc["6+", "actual_per_buyer"] == 4.0


def test_the_summary_views_rank_and_share(spark: SparkSession) -> None:
    buyers = spark.createDataFrame(
        [(i, 0.9 if i < 6 else 0.2, float(i), float(i), "A" if i < 8 else "B") for i in range(10)],
        f"{s.BUYER_ID} long, p_alive double, expected_purchase_days double, "
        "expected_value double, segment string",
    )
    summary = lifetime.summary(buyers).toPandas()
    for view, rows in summary.groupby("view"):
        assert rows["value_share"].sum() == pytest.approx(1.0), view
        assert sorted(rows["rank"]) == list(range(1, len(rows) + 1))
    by_segment = summary[summary["view"] == "segment"].set_index("group")
    assert by_segment.loc["B", "expected_value"] == 17.0
    assert by_segment.loc["B", "rank"] == 2
    assert set(summary.loc[summary["view"] == "decile", "group"]) <= {str(d) for d in range(1, 11)}
    cells = summary[summary["view"] == "alive_value"].set_index("group")
    # Buyers 6 to 9 are likely gone and above the median value: segments A (6, 7) and B
    # (8, 9) tie, and the first by name is named.
    assert cells.loc["likely gone, higher value", "buyers"] == 4
    assert cells.loc["likely gone, higher value", "top_segment"] == "A"


def test_the_pipeline_predicts_the_planted_buyers(spark: SparkSession, small_run: SmallRun) -> None:
    """On the small run's generated log: the buyer mart has every buyer, and the purchases
    the generator simulated past the period are within a quarter of the prediction."""
    insights = json.loads((small_run.out / "report" / "insights.json").read_text())
    section = insights["segments"]["lifetime"]
    clean_buyers = spark.read.parquet(str(small_run.out / "clean")).select(s.BUYER_ID).distinct()
    mart = spark.read.parquet(str(small_run.out / "marts" / "buyer_lifetime"))
    assert mart.count() == clean_buyers.count() == section["buyers"]
    assert mart.where(F.col("p_alive").isNull() | (F.col("expected_value") < 0)).count() == 0
    truth = section["planted"]
    assert truth["parameters"]["r"] == 0.25
    assert abs(truth["total_error"]) < 0.25
    assert section["holdout"]["total_error"] is not None
    page = (small_run.out / "report" / "report.html").read_text()
    assert "buyer_lifetime.png" in page or "Last months held out" in page or "BG/NBD" in page


def test_the_empty_tables_have_the_written_columns(
    spark: SparkSession, small_run: SmallRun
) -> None:
    """With no repeat buyer the stage writes its tables empty: with the columns and types a
    run that modelled writes, so a reader need not tell the two apart."""
    for name, columns in lifetime.EMPTY_TABLES.items():
        written = spark.read.parquet(str(small_run.out / name)).schema
        empty = spark.createDataFrame([], columns).schema
        assert [(f.name, f.dataType) for f in written] == [(f.name, f.dataType) for f in empty], (
            name
        )
