from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import generate, inputs, quality
from hotmart_spark import schema as s
from hotmart_spark.analysis import forecast as fc
from hotmart_spark.config import Config, load_config

START, END = dt.date(2016, 1, 1), dt.date(2016, 6, 30)
ROWS = 20_000


def generated(spark: SparkSession, seed: int = 7, rows: int = ROWS) -> DataFrame:
    sizes = generate.Sizes.for_rows(rows)
    return generate.standardised(generate.purchases(spark, sizes, seed, START, END))


def expected_per_buyer(spark: SparkSession, seed: int = 7, rows: int = ROWS) -> float:
    sizes = generate.Sizes.for_rows(rows)
    catalogue = generate.products(spark, sizes, seed, START, END)
    world = generate.buyers(spark, catalogue, rows, seed, START, END, months_after=0)
    world.table.unpersist()
    return world.expected_per_buyer


@pytest.fixture(scope="module")
def small(spark: SparkSession) -> DataFrame:
    return generated(spark).cache()


def test_pool_for_distinct_matches_hand_worked_expectations() -> None:
    # Uniform draws (skew 1) from a pool of B: E[distinct] = B * (1 - (1 - 1/B) ** draws).
    # Two draws from B = 2 hit 2 - 1/2 = 1.5 ids on average.
    assert generate.pool_for_distinct(1.5, draws=2, skew=1.0) == 2
    # Three draws: B = 2 gives 1.75, B = 3 gives 3 * (1 - 8/27) = 2.11; 2.1 needs B = 3.
    assert generate.pool_for_distinct(2.1, draws=3, skew=1.0) == 3


def test_largest_products_get_categories_by_deficit() -> None:
    # 100 -> Phisical book (83 of 100 owed). Then, of 110 rows, Podcast is owed 15.4 and has 0;
    # of 115, Podcast is owed 16.1 and has 10, still more than the book (95.45 - 100).
    assert generate._assign_categories([100, 10, 5]) == ["Phisical book", "Podcast", "Podcast"]


def test_sizes_scale_from_the_real_sample() -> None:
    real = generate.Sizes.for_rows(generate.REAL_ROWS)
    assert (real.products, real.producers, real.affiliates, real.buyers, real.origins) == (
        17_883,
        8_020,
        22_947,
        1_100_649,
        9_600,
    )
    tenth = generate.Sizes.for_rows(159_983)
    assert (tenth.products, tenth.producers, tenth.buyers) == (1_788, 802, 110_065)


def test_rows_follow_the_business_rules(small: DataFrame) -> None:
    assert small.count() == ROWS
    direct = F.col(s.AFFILIATE_ID) == F.col(s.PRODUCER_ID)
    checks = small.agg(
        F.sum((direct & (F.col(s.COMMISSION) != 0)).cast("int")).alias("direct_with_commission"),
        F.sum((F.col(s.PURCHASE_DATE) < F.col(s.PRODUCT_CREATION_DATE)).cast("int")).alias(
            "before_creation"
        ),
        F.min(F.to_date(s.PURCHASE_DATE)).alias("first_day"),
        F.max(F.to_date(s.PURCHASE_DATE)).alias("last_day"),
        F.avg(s.PURCHASE_VALUE).alias("z_mean"),
        F.stddev_pop(s.PURCHASE_VALUE).alias("z_std"),
        F.countDistinct(s.PURCHASE_ID).alias("ids"),
        F.sum((F.col(s.PRODUCER_ID) % 4 != 1).cast("int")).alias("producer_kind"),
        F.sum((F.col(s.BUYER_ID) % 4 != 3).cast("int")).alias("buyer_kind"),
    ).first()
    assert checks["direct_with_commission"] == 0
    assert checks["before_creation"] == 0
    assert checks["first_day"] >= START and checks["last_day"] <= END
    assert checks["z_mean"] == pytest.approx(0.0, abs=1e-9)
    assert checks["z_std"] == pytest.approx(1.0, abs=1e-9)
    assert checks["ids"] == ROWS
    assert checks["producer_kind"] == 0 and checks["buyer_kind"] == 0


def test_each_product_has_one_producer_category_niche_and_creation(small: DataFrame) -> None:
    per_product = small.groupBy(s.PRODUCT_ID).agg(
        *[
            F.countDistinct(c).alias(c)
            for c in (s.PRODUCER_ID, s.PRODUCT_CATEGORY, s.PRODUCT_NICHE, s.PRODUCT_CREATION_DATE)
        ]
    )
    assert per_product.where(F.greatest(*per_product.columns[1:]) > 1).count() == 0
    per_origin = small.groupBy(s.PURCHASE_ORIGIN).agg(F.countDistinct(s.IS_SOCIAL).alias("n"))
    assert per_origin.where("n > 1").count() == 0


def test_shape_targets_that_hold_at_a_small_size(spark: SparkSession, small: DataFrame) -> None:
    sizes = generate.Sizes.for_rows(ROWS)
    per_buyer = expected_per_buyer(spark)
    checks = {c.metric: c for c in generate.calibration(small, sizes, START, END, per_buyer)}
    for metric in (
        "rows",
        "Phisical book share",
        "Podcast share",
        "eReaders+Desktop+Smart TV share",
        "purchases per buyer",
        "mean commission %",
        "busiest / quietest weekday units",
        "February dip: min(Jan, Mar) / Feb value",
        "z mean",
        "z std",
    ):
        assert checks[metric].ok, checks[metric]


def test_same_seed_same_rows_other_seed_other_rows(spark: SparkSession, small: DataFrame) -> None:
    assert_df_equality(generated(spark, seed=7), small, ignore_row_order=True)
    other = generated(spark, seed=8)
    assert other.exceptAll(small).count() > 0


def test_chunks_and_partitions_do_not_change_the_rows(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compared before standardising: the z-score's mean and sd add up in partition order.
    def drawn() -> DataFrame:
        return generate.purchases(spark, generate.Sizes.for_rows(ROWS), 7, START, END)

    whole = drawn().cache()
    # Chunks of at most 7 purchases over 20,000 / 3,000 -> 7 partitions: every product's
    # purchases split across chunks (a best seller into hundreds) and partitions.
    monkeypatch.setattr(generate, "CHUNK_ROWS", 7)
    monkeypatch.setattr(generate, "ROWS_PER_PARTITION", 3_000)
    chunked = drawn()
    assert chunked.rdd.getNumPartitions() >= 7
    assert chunked.count() == whole.count() == ROWS
    assert chunked.exceptAll(whole).count() == 0
    assert whole.exceptAll(chunked).count() == 0
    whole.unpersist()


def test_defects_are_injected_and_caught(spark: SparkSession, small: DataFrame) -> None:
    rate = 0.01
    defective = generate.with_defects(small, rate, seed=7, end=END)
    counts = {r["defect"]: r["count"] for r in defective.groupBy("defect").count().collect()}
    copies = counts["duplicate_purchase_id"]
    assert defective.count() == ROWS + copies
    for kind in generate.DEFECT_KINDS:
        # About rate * rows each: 200, with binomial noise well inside 150..250.
        assert 150 <= counts[kind] <= 250, (kind, counts[kind])

    flagged = quality.flag(
        defective.drop("defect").withColumns(
            {s.SOURCE_FILE: F.lit("generated"), s.RAW_LINE: F.lit(None).cast("string")}
        ),
        START,
        END,
        burst_min_rows=100,
        burst_ratio=load_config().quality.placeholder_burst_ratio,
        max_abs_z=load_config().quality.max_abs_z,
        actions=load_config().quality.actions,
    )
    result = quality.quality_counts(flagged)
    assert result["rows_in"] == result["rows_clean"] + result["rows_quarantined"] == ROWS + copies
    by_rule = result["quarantine_by_rule"]
    assert by_rule["duplicate_purchase_id"] == copies
    assert by_rule["outside_period"] == counts["outside_period"]
    assert by_rule["placeholder_burst"] == counts["placeholder_burst"]
    # Burst rows lose their commission, so they break this rule too.
    assert (
        by_rule["commission_invalid"] == counts["commission_invalid"] + counts["placeholder_burst"]
    )
    assert by_rule["purchase_before_creation"] >= counts["purchase_before_creation"]


def test_csv_export_reads_back_as_generated(
    spark: SparkSession, small: DataFrame, tmp_path: Path, config: Config
) -> None:
    gen = load_config(
        overrides=[
            "generator.pandas_index=true",
            "generator.blank_first_row=true",
            "generator.encoding=ISO-8859-1",
            "generator.files=2",
        ]
    ).generator
    out = str(tmp_path / "export")
    generate.write_export(generate.with_defects(small, 0.0, 7, END), out, gen)
    first_file = sorted(Path(out).glob("part-*.csv"))[0].read_text(encoding="latin-1")
    header, blank = first_file.splitlines()[:2]
    assert header.startswith(",purchase_id,product_id,")
    assert blank == "," * header.count(",")
    assert '"0,0"' in first_file or '"1,0"' in first_file

    back = inputs.read_purchases(spark, inputs.resolve_input(out), encoding="ISO-8859-1").where(
        "purchase_id is not null"
    )
    assert back.where(F.col(s.RAW_LINE).isNotNull()).count() == 0
    assert_approx_df_equality(
        back.drop(s.SOURCE_FILE, s.RAW_LINE).orderBy(s.PURCHASE_ID),
        small.orderBy(s.PURCHASE_ID),
        precision=1e-9,
        ignore_nullable=True,
    )


def test_malformed_lines_in_csv_are_quarantined(
    spark: SparkSession, small: DataFrame, tmp_path: Path
) -> None:
    gen = load_config(overrides=["generator.files=1"]).generator
    defective = generate.with_defects(small, 0.01, 7, END)
    injected = defective.where("defect = 'malformed'").count()
    out = str(tmp_path / "export")
    generate.write_export(defective, out, gen)
    back = inputs.read_purchases(spark, inputs.resolve_input(out))
    assert back.count() == defective.count()
    assert back.where(F.col(s.RAW_LINE).isNotNull()).count() == injected


def test_parquet_export_reads_back_as_generated(
    spark: SparkSession, small: DataFrame, tmp_path: Path
) -> None:
    gen = load_config(overrides=["generator.format=parquet", "generator.files=2"]).generator
    out = str(tmp_path / "export")
    generate.write_export(generate.with_defects(small, 0.0, 7, END), out, gen)
    source = inputs.resolve_input(out)
    assert source.format == "parquet"
    assert spark.read.parquet(out).columns[-1] == s.VENDA
    back = inputs.read_purchases(spark, source)
    assert back.where(F.col(s.RAW_LINE).isNotNull()).count() == 0
    assert_df_equality(
        back.drop(s.SOURCE_FILE, s.RAW_LINE), small, ignore_row_order=True, ignore_nullable=True
    )


def test_expected_repeats_worked_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    # Early on, repeats come at the mean rate r / alpha = 0.25 / 40 a day.
    assert generate.expected_repeats(np.array([0.01]))[0] == pytest.approx(0.01 * 0.25 / 40, 1e-3)
    # In the long run a buyer makes its repeats until it drops out: 1 / p of them, whose mean
    # over Beta(2, 3) is (a + b - 1) / (a - 1) = 4. (r = 2 makes the limit near at 10^6 days.)
    monkeypatch.setattr(generate, "BUYER_RATE_SHAPE", 2.0)
    monkeypatch.setattr(generate, "DROPOUT_A", 2.0)
    monkeypatch.setattr(generate, "DROPOUT_B", 3.0)
    assert generate.expected_repeats(np.array([1e6]))[0] == pytest.approx(4.0, 1e-3)


def test_arrivals_leave_room_for_repeats() -> None:
    target = np.full(120, 100.0)
    arrivals = generate.arrivals_for(target)
    # Day 0 has no earlier buyer: its 100 purchases are new buyers and their same-day repeats.
    first_day_repeats = generate.expected_repeats(np.array([0.5]))[0]
    assert arrivals[0] == pytest.approx(100.0 / (1 + first_day_repeats))
    # Later days: new buyers' purchases plus every earlier buyer's expected repeats make 100.
    kernel = np.diff(np.concatenate([[0.0], generate.expected_repeats(np.arange(120) + 0.5)]))
    made = arrivals + np.convolve(arrivals, kernel)[:120]
    assert made == pytest.approx(target, rel=1e-9)
    assert arrivals[-1] < 0.8 * arrivals[0]


@pytest.fixture(scope="module")
def world(spark: SparkSession) -> Iterator[tuple[generate.Buyers, DataFrame, DataFrame]]:
    sizes = generate.Sizes.for_rows(ROWS)
    catalogue = generate.products(spark, sizes, 7, START, END).cache()
    buyers = generate.buyers(spark, catalogue, ROWS, 7, START, END, months_after=2)
    rows = generate.purchases_of(spark, catalogue, sizes, 7, START, END, buyers).cache()
    after = generate.purchases_after(spark, catalogue, 7, START, END, buyers).cache()
    yield buyers, rows, after
    for kept in (rows, after, buyers.table, catalogue):
        kept.unpersist()


def test_buyers_follow_the_planted_process(
    world: tuple[generate.Buyers, DataFrame, DataFrame],
) -> None:
    buyers, rows, _ = world
    assert rows.count() == ROWS
    assert rows.select(s.BUYER_ID).distinct().count() == buyers.written
    # 20,000 purchases of about 16,000 buyers: the mean's sd is about 0.6%.
    assert ROWS / buyers.written == pytest.approx(buyers.expected_per_buyer, rel=0.03)
    # No repeat by the period's end has chance E[(alpha / (alpha + T))^r] over arrival times
    # (the Gamma rate's Laplace transform): it checks the rate draws alone.
    days = buyers.period_days
    remaining = days - np.arange(days) - 0.5
    arrived = buyers.arrivals_daily[:days]
    r, alpha = generate.BUYER_RATE_SHAPE, generate.BUYER_RATE_SCALE_DAYS
    expected = float(np.sum(arrived * (alpha / (alpha + remaining)) ** r) / arrived.sum())
    once = rows.groupBy(s.BUYER_ID).count().where("count = 1").count() / buyers.written
    assert once == pytest.approx(expected, abs=0.015)


def test_the_months_after_the_period_are_simulated_not_written(
    world: tuple[generate.Buyers, DataFrame, DataFrame],
) -> None:
    buyers, rows, after = world
    moments = generate.Moments.of(rows)
    truth = generate.after_period_truth(after, moments, 2)
    assert [m["month"] for m in truth["months"]] == ["2016-07", "2016-08"]
    # Each month near what the process expects (about 3,500 purchases: sd near 2%).
    expected = buyers.expected_daily[buyers.period_days :]
    for m, days in zip(truth["months"], (expected[:31], expected[31:]), strict=True):
        assert m["purchases"] == pytest.approx(days.sum(), rel=0.08)
    # Relative units: (raw - the period's minimum) / its sd, summed.
    raw = after.where("month = '2016-07'").agg(F.sum("raw_value")).first()[0]
    july = truth["months"][0]
    assert july["value"] == pytest.approx((raw - july["purchases"] * moments.minimum) / moments.std)
    # Per category too, for the category forecasts: each month's categories sum to it.
    for m in truth["months"]:
        parts = [c["value"] for c in truth["categories"] if c["month"] == m["month"]]
        assert sum(parts) == pytest.approx(m["value"], rel=1e-9)
    assert {c["category"] for c in truth["categories"]} <= set(generate.CATEGORY_SHARES)
    per_buyer = generate.truth_buyers(buyers, after, moments)
    assert per_buyer.count() == buyers.written
    written_after = after.where(F.col("buyer_index") < generate.AFTER_BUYER_INDEX).count()
    assert per_buyer.agg(F.sum("purchases_after")).first()[0] == written_after
    # Buyers arriving after the period buy only then, and none of them is in the log.
    newcomers = after.where(F.col("buyer_index") >= generate.AFTER_BUYER_INDEX).count()
    assert newcomers > 0
    assert rows.agg(F.max(s.BUYER_ID)).first()[0] < generate.AFTER_BUYER_INDEX * 4


def test_the_forecast_holds_the_months_simulated_after_the_period(
    world: tuple[generate.Buyers, DataFrame, DataFrame], config
) -> None:
    """Q5 scored on the generator's truth: the months the buyers' process ran past the
    period, never written, inside the forecast's 95% intervals, and their sum inside the
    total's."""
    _, rows, after = world
    moments = generate.Moments.of(rows)
    daily = (
        rows.groupBy(F.to_date(s.PURCHASE_DATE).alias("day"))
        .agg(F.sum(moments.relative(F.col("raw_value"))).alias("value"))
        .orderBy("day")
        .toPandas()
    )
    settings = dataclasses.replace(config.forecast, horizon_months=2)
    result = fc.forecast_revenue(fc.daily_series(daily["day"], daily["value"]), settings)
    chosen = result.forecasts[result.chosen]
    simulated = {
        m["month"]: m["value"] for m in generate.after_period_truth(after, moments, 2)["months"]
    }
    for month, row in chosen.monthly.iterrows():
        assert row["lo95"] <= simulated[str(month)] <= row["hi95"], (month, row.to_dict())
    total = sum(simulated.values())
    assert chosen.total["lo95"] <= total <= chosen.total["hi95"]
    # Bounded: the 18 weekly origins give enough backtest cells for a 95% interval.
    assert np.isfinite(chosen.total["hi95"])
