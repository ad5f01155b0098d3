"""Q1 and Q2 marts on a hand-made table of 24 purchases; every expected number is worked out here.

Producer 1 sells 4 times for 10 (Jan 5 and Feb 5 through affiliate 900 at 50%, Mar 5 and
Mar 6 direct). Producers 2..21 sell once each for their own id (2..21): producers 2..11 on
January <id>, producers 12..21 on February <id - 10>. Total value 40 + (2 + ... + 21) = 270.
"""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms import producers as q1
from hotmart_spark.transforms import trends as q2
from hotmart_spark.transforms.ranking import concentration, rank_desc, value_bucket
from hotmart_spark.transforms.revenue import ValueScale, value_scale, with_value
from tests.conftest import loaded, purchase

TOTAL = 270.0


@pytest.fixture(scope="module")
def purchases(spark: SparkSession) -> DataFrame:
    rows = [
        purchase(1, **{s.PRODUCER_ID: 1, s.AFFILIATE_ID: 900, s.COMMISSION: 50.0, s.BUYER_ID: 100,
                       s.PURCHASE_DATE: dt.datetime(2016, 1, 5, 12), s.PURCHASE_VALUE: 10.0}),
        purchase(2, **{s.PRODUCER_ID: 1, s.AFFILIATE_ID: 900, s.COMMISSION: 50.0, s.BUYER_ID: 100,
                       s.PURCHASE_DATE: dt.datetime(2016, 2, 5, 12), s.PURCHASE_VALUE: 10.0}),
        purchase(3, **{s.PRODUCER_ID: 1, s.AFFILIATE_ID: 1, s.BUYER_ID: 101,
                       s.PURCHASE_DATE: dt.datetime(2016, 3, 5, 12), s.PURCHASE_VALUE: 10.0}),
        purchase(4, **{s.PRODUCER_ID: 1, s.AFFILIATE_ID: 1, s.BUYER_ID: 102,
                       s.PURCHASE_DATE: dt.datetime(2016, 3, 6, 12), s.PURCHASE_VALUE: 10.0}),
    ]  # fmt: skip
    for producer in range(2, 22):
        january = producer <= 11
        buyer = (
            200 + producer - 2
            if january
            else (200 + producer - 12 if producer <= 16 else 300 + producer - 17)
        )
        rows.append(
            purchase(
                100 + producer,
                **{
                    s.PRODUCER_ID: producer,
                    s.AFFILIATE_ID: producer,
                    s.PRODUCT_ID: producer * 10,
                    s.PRODUCT_CATEGORY: "Podcast",
                    s.BUYER_ID: buyer,
                    s.PURCHASE_DATE: dt.datetime(2016, 1, producer, 12)
                    if january
                    else dt.datetime(2016, 2, producer - 10, 12),
                    s.PURCHASE_VALUE: float(producer),
                },
            )
        )
    for row in rows[:4]:
        row[s.PRODUCT_CATEGORY] = "Phisical book"
    clean = loaded(spark, rows).withColumn(
        s.PURCHASE_MONTH, F.date_format(s.PURCHASE_DATE, "yyyy-MM")
    )
    return with_value(clean, ValueScale(0.0, 1.0, "test units"), platform_fee_rate=0.1).cache()


def test_value_scale() -> None:
    assert value_scale(100.0, 20.0, "BRL", z_min=-0.5) == ValueScale(100.0, 20.0, "BRL")
    assert value_scale(0.0, 0.0, "BRL", z_min=-0.5) == ValueScale(0.5, 1.0, "relative value units")


def test_producer_table(purchases: DataFrame) -> None:
    producers = q1.producer_table(purchases)
    first = producers.where(F.col(s.PRODUCER_ID) == 1).first().asDict()
    assert first == {
        s.PRODUCER_ID: 1,
        "units": 4,
        "revenue": 40.0,
        "platform_revenue": pytest.approx(4.0),
        "products": 1,
        "affiliates": 1,
        "buyers": 3,
        "first_sale_day": dt.date(2016, 1, 5),
        "last_sale_day": dt.date(2016, 3, 6),
        "affiliate_units_share": 0.5,
        "avg_value_per_sale": 10.0,
        "months_active": 3,
    }
    assert producers.count() == 21
    assert producers.agg(F.sum("revenue")).first()[0] == pytest.approx(TOTAL)


def test_top_producers_by_the_p95_rule(purchases: DataFrame) -> None:
    producers = q1.producer_table(purchases)
    # Units: twenty producers with 1, one with 4. The 95th percentile of 21 values is the
    # ceil(0.95 * 21) = 20th smallest, 1; strictly above it: producer 1 alone.
    p95 = q1.p95_units(producers)
    assert p95 == 1.0
    top = q1.top_by_units_rule(producers, p95).where("is_top").select(s.PRODUCER_ID).collect()
    assert [r[0] for r in top] == [1]


def test_concentration(purchases: DataFrame) -> None:
    producers = q1.producer_table(purchases)
    ranked = rank_desc(producers, "revenue", s.PRODUCER_ID)
    result = concentration(ranked, "revenue").first()
    # Revenue from the top: 40, 21, 20, 19, 18, ... 2.
    # Gini, ascending x_k = 2..21 then 40 (n = 21, S = 270): sum((2k - 22) x_k)
    # = sum_{k=1..20} (2k - 22)(k + 1) + 20 * 40 = (5740 - 4200 - 440) + 800 = 1900,
    # Gini = 1900 / (21 * 270). HHI = (40^2 + 2^2 + ... + 21^2) / 270^2 = 4910 / 72900.
    assert result["n"] == 21
    assert result["total"] == pytest.approx(TOTAL)
    assert result["gini"] == pytest.approx(1900 / 5670)
    assert result["hhi"] == pytest.approx(4910 / 72900)
    # Top k%: the first ceil(k * 21): 1, 2, 3 and 5 producers.
    assert result["top_1pct"] == pytest.approx(40 / 270)
    assert result["top_5pct"] == pytest.approx(61 / 270)
    assert result["top_10pct"] == pytest.approx(81 / 270)
    assert result["top_20pct"] == pytest.approx(118 / 270)
    # Revenue at risk if the top 1, 5, 10, 50 left: 40, 118, 40 + (13 + ... + 21) = 193, all.
    assert result["top_n_1"] == pytest.approx(40 / 270)
    assert result["top_n_5"] == pytest.approx(118 / 270)
    assert result["top_n_10"] == pytest.approx(193 / 270)
    assert result["top_n_50"] == pytest.approx(1.0)


def test_gini_of_equal_and_of_one_holder(spark: SparkSession) -> None:
    equal = spark.createDataFrame([(i, 5.0) for i in range(1, 5)], ["id", "v"])
    assert concentration(rank_desc(equal, "v", "id"), "v").first()["gini"] == pytest.approx(0.0)
    one = spark.createDataFrame([(1, 8.0), (2, 0.0), (3, 0.0), (4, 0.0)], ["id", "v"])
    # 1 - 2 * area: the Lorenz curve is 0 until the last step, area = (1/4) * (0 + 1) / 2.
    assert concentration(rank_desc(one, "v", "id"), "v").first()["gini"] == pytest.approx(0.75)


def test_rank_breaks_ties_by_key_across_buckets(spark: SparkSession) -> None:
    # Equal values (5, 5 and 3, 3) rank by key; four buckets split the six rows.
    data = spark.createDataFrame(
        [(10, 5.0), (11, 5.0), (12, 3.0), (13, 1.0), (14, 3.0), (15, 9.0)], ["key", "v"]
    )
    ranked = rank_desc(data, "v", "key", buckets=4).select("key", "rank", "cum_value")
    expected = spark.createDataFrame(
        [(15, 1, 9.0), (10, 2, 14.0), (11, 3, 19.0), (12, 4, 22.0), (14, 5, 25.0), (13, 6, 26.0)],
        ["key", "rank", "cum_value"],
    )
    assert_df_equality(ranked, expected, ignore_row_order=True, ignore_nullable=True)


def test_value_buckets_split_by_every_cut(spark: SparkSession) -> None:
    # Cuts 1, 2, 3: bucket = how many cuts lie above the value, so the largest values are in
    # bucket 0, a value on a cut goes with the values above it, and every cut splits.
    values = spark.createDataFrame([(0.5,), (1.0,), (1.5,), (2.0,), (2.5,), (3.0,), (7.0,)], ["v"])
    buckets = values.select("v", value_bucket(F.col("v"), [2.0, 1.0, 3.0, 2.0]).alias("b"))
    assert sorted(tuple(r) for r in buckets.collect()) == [
        (0.5, 3), (1.0, 2), (1.5, 2), (2.0, 1), (2.5, 1), (3.0, 0), (7.0, 0)
    ]  # fmt: skip
    assert values.select(value_bucket(F.col("v"), []).alias("b")).distinct().collect()[0][0] == 0


def unpartitioned_windows(df: DataFrame, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The plan's Window nodes without a partition key. The simple plan prints a Window as
    `Window [expressions], [partition keys], [order]` and leaves empty partition keys out."""
    df.explain()
    nodes = [line.split("Window ", 1)[1] for line in capsys.readouterr().out.splitlines()
             if line.lstrip(" +-:").startswith("Window [")]  # fmt: skip

    def top_level_lists(text: str) -> int:
        depth = lists = 0
        for char in text:
            lists += char == "[" and depth == 0
            depth += (char == "[") - (char == "]")
        return lists

    return [node for node in nodes if top_level_lists(node) < 3]


def test_ranking_runs_no_window_over_all_rows(
    spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    data = spark.createDataFrame([(10, 5.0), (11, 3.0), (12, 9.0)], ["key", "v"])
    # The check itself: a running sum ordered over every row is such a window.
    everything = Window.orderBy("key").rowsBetween(Window.unboundedPreceding, 0)
    assert len(unpartitioned_windows(data.select(F.sum("v").over(everything)), capsys)) == 1
    assert unpartitioned_windows(rank_desc(data, "v", "key", buckets=2), capsys) == []


def test_pareto_curve(purchases: DataFrame) -> None:
    ranked = rank_desc(q1.producer_table(purchases), "revenue", s.PRODUCER_ID)
    points = q1.pareto_curve(ranked, 21, TOTAL).orderBy("producer_share").collect()
    assert len(points) == 22
    assert (points[0][0], points[0][1]) == (0.0, 0.0)
    assert points[1][0] == pytest.approx(1 / 21) and points[1][1] == pytest.approx(40 / 270)
    assert points[-1][0] == pytest.approx(1.0) and points[-1][1] == pytest.approx(1.0)


def test_monthly_concentration(purchases: DataFrame) -> None:
    monthly = {
        r["month"]: r for r in q1.monthly_concentration(q1.monthly_ranked(purchases)).collect()
    }
    # January: producer 11 (11) is ahead of producer 1 (10); value 10 + (2 + ... + 11) = 75.
    assert monthly["2016-01"]["n"] == 11
    assert monthly["2016-01"]["top_n_1"] == pytest.approx(11 / 75)
    # March: producer 1 alone.
    assert monthly["2016-03"]["n"] == 1 and monthly["2016-03"]["top_n_1"] == pytest.approx(1.0)


def test_top_persistence(purchases: DataFrame) -> None:
    by_month = q1.monthly_ranked(purchases)
    # Top 20%: January's 11 producers rank 11 (11), then 1 and 10 (10 each, ties by id), so
    # its top ceil(2.2) = 3 are {11, 1, 10}; February's are {21, 20, 19}: none stays. Of
    # February's value, 10 + (12 + ... + 21) = 175, producer 1 made 10. March has producer
    # 1 alone, so its top is {1}, and February's top sold nothing in March.
    top20 = {r["month"]: r.asDict() for r in q1.top_persistence(by_month, 0.2).collect()}
    assert sorted(top20) == ["2016-02", "2016-03"]  # January has no month before it
    assert top20["2016-02"] == {
        "month": "2016-02",
        "previous_month": "2016-01",
        "top_previous": 3,
        "stayed_top": 0,
        "persistence": 0.0,
        "top_now": 3,
        "producers": 11,
        "chance": pytest.approx(3 / 11),
        "previous_top_value_share": pytest.approx(10 / 175),
    }
    assert top20["2016-03"]["top_previous"] == 3
    assert top20["2016-03"]["chance"] == 1.0
    assert top20["2016-03"]["previous_top_value_share"] == 0.0
    # With every producer on top, persistence is the share still selling: producer 1 alone.
    everyone = {r["month"]: r for r in q1.top_persistence(by_month, 1.0).collect()}
    assert everyone["2016-02"]["persistence"] == pytest.approx(1 / 11)
    assert everyone["2016-03"]["persistence"] == pytest.approx(1 / 11)
    assert everyone["2016-03"]["previous_top_value_share"] == pytest.approx(1.0)


def test_channels_and_affiliates(purchases: DataFrame) -> None:
    channels = {r["channel"]: r.asDict() for r in q1.channel_table(purchases).collect()}
    assert channels["affiliate"] == {
        "channel": "affiliate",
        "units": 2,
        "value": 20.0,
        "mean_commission": 50.0,
        "commission_value": 10.0,
        "units_share": pytest.approx(2 / 24),
        "value_share": pytest.approx(20 / 270),
    }
    assert (channels["direct"]["units"], channels["direct"]["value"]) == (22, 250.0)
    affiliates = q1.affiliate_table(purchases).collect()
    assert [(r[s.AFFILIATE_ID], r["units"], r["revenue"], r["producers"]) for r in affiliates] == [
        (900, 2, 20.0, 1)
    ]


def test_monthly_revenue_growth_and_new_buyers(purchases: DataFrame) -> None:
    period = (dt.date(2016, 1, 1), dt.date(2016, 3, 31))
    monthly = {r["month"]: r.asDict() for r in q2.monthly_revenue(purchases, *period).collect()}
    # Jan 10 + 65 = 75; Feb 10 + (12 + ... + 21) = 175; Mar 10 + 10 = 20.
    assert [monthly[m]["value"] for m in ("2016-01", "2016-02", "2016-03")] == [75.0, 175.0, 20.0]
    assert monthly["2016-01"]["growth"] is None
    assert monthly["2016-02"]["growth"] == pytest.approx(175 / 75 - 1)
    assert monthly["2016-03"]["growth"] == pytest.approx(20 / 175 - 1)
    # Per day of the month: 31, 29 and 31 days. February's +133% is +149% a day.
    assert [monthly[m]["days"] for m in ("2016-01", "2016-02", "2016-03")] == [31, 29, 31]
    assert monthly["2016-02"]["growth_per_day"] == pytest.approx((175 / 29) / (75 / 31) - 1)
    assert monthly["2016-03"]["growth_per_day"] == pytest.approx((20 / 31) / (175 / 29) - 1)
    assert monthly["2016-01"]["growth_per_day"] is None
    # A period from Jan 16 has 16 days of January: its value per day is 75 / 16.
    cut = {
        r["month"]: r
        for r in q2.monthly_revenue(purchases, dt.date(2016, 1, 16), period[1]).collect()
    }
    assert cut["2016-01"]["days"] == 16 and cut["2016-01"]["value_per_day"] == 75 / 16
    # Only the period's first month counts every buyer as new because none is seen before.
    assert [monthly[m]["new_buyers_censored"] for m in sorted(monthly)] == [True, False, False]
    # Jan: buyers 100, 200..209, all new. Feb: 100 and 200..204 return, 300..304 are new.
    # Mar: 101 and 102, new.
    buyers = {m: (r["buyers"], r["new_buyers"], r["returning_buyers"]) for m, r in monthly.items()}
    assert buyers == {"2016-01": (11, 11, 0), "2016-02": (11, 5, 6), "2016-03": (2, 2, 0)}
    assert sum(r["units"] for r in monthly.values()) == 24


def test_daily_revenue(purchases: DataFrame) -> None:
    daily = {r["day"]: r.asDict() for r in q2.daily_revenue(purchases).collect()}
    # Feb 5: producer 1 to buyer 100 (10) and producer 15 to buyer 203 (15); both bought in January.
    assert daily[dt.date(2016, 2, 5)] == {
        "day": dt.date(2016, 2, 5),
        "value": 25.0,
        "platform_revenue": pytest.approx(2.5),
        "units": 2,
        "buyers": 2,
        "new_buyers": 0,
    }
    # Feb 7: producer 17 to buyer 300, a first purchase.
    assert daily[dt.date(2016, 2, 7)]["new_buyers"] == 1
    assert sum(r["value"] for r in daily.values()) == pytest.approx(TOTAL)


def test_weekday_hour(purchases: DataFrame) -> None:
    cells = {(r["weekday"], r["hour"]): r for r in q2.weekday_hour(purchases).collect()}
    # Tuesdays (ISO 2) at noon: Jan 5 (producers 1 and 5), Feb 2 (12), Feb 9 (19): 10+5+12+19.
    assert (cells[(2, 12)]["units"], cells[(2, 12)]["value"]) == (4, 46.0)
    assert sum(r["units"] for r in cells.values()) == 24


def test_breakdowns(purchases: DataFrame) -> None:
    levels = q2.breakdown_levels(q2.top_origins(purchases))
    # 91 days, halves of 45: Jan 1 - Feb 14 and Feb 16 - Mar 31 (Feb 15 counts in neither).
    table = q2.breakdowns(purchases, levels, dt.date(2016, 1, 1), dt.date(2016, 3, 31))
    rows = {(r["dimension"], r["level"]): r for r in table.collect()}
    book = rows[("category", "Phisical book")]
    # 4 sales of 10: Jan 5 and Feb 5 in the first half, Mar 5 and Mar 6 in the second.
    assert (book["units"], book["value"], book["avg_value"]) == (4, 40.0, 10.0)
    assert (book["first_half_value"], book["second_half_value"], book["half_growth"]) == (
        20.0,
        20.0,
        0.0,
    )
    assert book["value_share"] == pytest.approx(40 / 270)
    assert book["units_share"] == pytest.approx(4 / 24)
    shares = table.groupBy("dimension").agg(F.sum("value_share"), F.sum("units_share")).collect()
    assert {r[0] for r in shares} == set(levels)
    for _, value_share, units_share in shares:
        assert value_share == pytest.approx(1.0) and units_share == pytest.approx(1.0)
    assert rows[("social_network", "other referrer")]["units"] == 24


def test_month_number_and_label_across_a_year_end(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(dt.datetime(2015, 12, 31, 23, 59, 59),), (dt.datetime(2016, 1, 1, 0, 0, 0),)],
        [s.PURCHASE_DATE],
    )
    numbered = df.select(q2.month_number().alias("n")).withColumn(
        "label", q2.month_label(F.col("n"))
    )
    # 2015 * 12 + 11 and 2016 * 12 + 0.
    assert [tuple(r) for r in numbered.collect()] == [(24191, "2015-12"), (24192, "2016-01")]
