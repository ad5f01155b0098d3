from __future__ import annotations

import datetime as dt
from typing import Any

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from hotmart_spark import quality
from hotmart_spark import schema as s
from tests.conftest import loaded, purchase

START, END = dt.date(2016, 1, 1), dt.date(2016, 6, 30)
ALL_QUARANTINE = dict.fromkeys(quality.RULE_NAMES, "quarantine")
MAX_ABS_Z = 10_000.0
DEFAULT_ACTIONS = {**ALL_QUARANTINE, "affiliate_sale_without_commission": "warn"}


def flagged(
    spark: SparkSession,
    rows: list[dict[str, Any]],
    burst_min_rows: int = 100,
    actions: dict[str, str] | None = None,
    burst_ratio: float = 20.0,
) -> DataFrame:
    return quality.flag(
        loaded(spark, rows),
        START,
        END,
        burst_min_rows,
        burst_ratio,
        MAX_ABS_Z,
        actions or DEFAULT_ACTIONS,
    )


def outcome(df: DataFrame) -> dict[int, tuple[list[str], list[str]]]:
    return {r[s.PURCHASE_ID]: (r[s.REASONS], r[s.WARNINGS]) for r in df.collect()}


def test_a_valid_purchase_breaks_no_rule(spark: SparkSession) -> None:
    assert outcome(flagged(spark, [purchase(1)])) == {1: ([], [])}


def test_each_rule_on_a_row_that_breaks_it(spark: SparkSession) -> None:
    rows = [
        purchase(1, **{s.BUYER_ID: None}),
        purchase(2, **{s.PURCHASE_DATE: dt.datetime(2015, 12, 31, 23, 59, 59)}),
        purchase(3, **{s.PURCHASE_DATE: dt.datetime(2016, 7, 1, 0, 0, 0)}),
        purchase(4, **{s.PRODUCT_CREATION_DATE: dt.datetime(2016, 1, 10, 12, 0, 5)}),
        purchase(5, **{s.COMMISSION: None}),
        purchase(6, **{s.AFFILIATE_ID: 8, s.COMMISSION: 100.5}),
        purchase(7, **{s.COMMISSION: -1.0}),
        purchase(8, **{s.COMMISSION: 25.0}),  # direct sale (affiliate = producer) with commission
        purchase(9, **{s.AFFILIATE_ID: 8, s.COMMISSION: 0.0}),  # affiliate sale at 0%: a warning
        purchase(10, **{s.RAW_LINE: "10,oops"}),
        purchase(11, **{s.PURCHASE_VALUE: 1e308}),
        purchase(12, **{s.PURCHASE_VALUE: float("-inf")}),
        purchase(13, **{s.PURCHASE_VALUE: -10_000.5}),
        purchase(14, **{s.PURCHASE_VALUE: 10_000.0}),  # at the bound: a price still
    ]
    assert outcome(flagged(spark, rows)) == {
        1: (["required_null"], []),
        2: (["outside_period"], []),
        3: (["outside_period"], []),
        4: (["purchase_before_creation"], []),
        5: (["commission_invalid"], []),
        6: (["commission_invalid"], []),
        7: (["commission_invalid"], []),
        8: (["direct_sale_with_commission"], []),
        9: ([], ["affiliate_sale_without_commission"]),
        10: (["malformed"], []),
        11: (["value_out_of_range"], []),
        12: (["value_out_of_range"], []),
        13: (["value_out_of_range"], []),
        14: ([], []),
    }


def test_rows_on_the_edges_pass(spark: SparkSession) -> None:
    rows = [
        purchase(1, **{s.PURCHASE_DATE: dt.datetime(2016, 1, 1, 0, 0, 0)}),
        purchase(2, **{s.PURCHASE_DATE: dt.datetime(2016, 6, 30, 23, 59, 59)}),
        purchase(3, **{s.PRODUCT_CREATION_DATE: dt.datetime(2016, 1, 10, 12, 0, 3)}),
        purchase(4, **{s.AFFILIATE_ID: 8, s.COMMISSION: 100.0}),
        purchase(5, **{s.PRODUCT_CREATION_DATE: None, s.PRODUCT_NICHE: None}),
    ]
    assert outcome(flagged(spark, rows)) == {i: ([], []) for i in range(1, 6)}


def test_a_row_carries_every_rule_it_breaks(spark: SparkSession) -> None:
    # A direct sale (affiliate = producer) with 150% commission breaks both commission rules.
    row = purchase(
        1, **{s.PURCHASE_DATE: dt.datetime(2016, 8, 1), s.COMMISSION: 150.0, s.BUYER_ID: None}
    )
    assert outcome(flagged(spark, [row])) == {
        1: (
            [
                "required_null",
                "outside_period",
                "commission_invalid",
                "direct_sale_with_commission",
            ],
            [],
        )
    }


def test_malformed_rows_carry_only_malformed(spark: SparkSession) -> None:
    # The loader could not parse this line, so its other fields say nothing.
    row = purchase(1, **{s.RAW_LINE: "1,10,,,", s.BUYER_ID: None, s.COMMISSION: None})
    assert outcome(flagged(spark, [row])) == {1: (["malformed"], [])}


def test_duplicates_keep_the_first_by_content_order(spark: SparkSession) -> None:
    later = purchase(1, **{s.PURCHASE_DATE: dt.datetime(2016, 3, 1), s.BUYER_ID: 1})
    earlier = purchase(1, **{s.PURCHASE_DATE: dt.datetime(2016, 2, 1), s.BUYER_ID: 2})
    exact_copy = dict(earlier)
    for order in ([later, earlier, exact_copy], [exact_copy, earlier, later]):
        result = flagged(spark, [*order, purchase(2)]).collect()
        kept = [r for r in result if r[s.PURCHASE_ID] == 1 and not r[s.REASONS]]
        dropped = [r[s.REASONS] for r in result if r[s.PURCHASE_ID] == 1 and r[s.REASONS]]
        assert [r[s.BUYER_ID] for r in kept] == [2]
        assert dropped == [["duplicate_purchase_id"], ["duplicate_purchase_id"]]
        assert [r[s.REASONS] for r in result if r[s.PURCHASE_ID] == 2] == [[]]


def test_placeholder_burst(spark: SparkSession) -> None:
    burst_second = dt.datetime(2016, 6, 26, 12, 0, 0)
    busy_second = dt.datetime(2016, 3, 1, 9, 0, 0)
    rows = [purchase(i, **{s.PURCHASE_DATE: burst_second}) for i in (1, 2, 3)]
    # The only stamp of its day: a day-stamped log looks like this, and it is no burst.
    rows += [purchase(i, **{s.PURCHASE_DATE: busy_second}) for i in (4, 5, 7)]
    rows += [purchase(6, **{s.PURCHASE_DATE: burst_second.replace(second=1)})]
    # 3 rows at one second against 1 at the day's other second: 3 >= 2 x 1.
    result = outcome(flagged(spark, rows, burst_min_rows=3, burst_ratio=2.0))
    assert {i for i, (reasons, _) in result.items() if reasons} == {1, 2, 3}
    assert result[1] == (["placeholder_burst"], [])
    # 3 < 4 x 1: the same second is ordinary for a ratio of 4.
    result = outcome(flagged(spark, rows, burst_min_rows=3, burst_ratio=4.0))
    assert not any(reasons for reasons, _ in result.values())


def day_of(day: int, seconds: list[int], first_id: int) -> list[dict[str, Any]]:
    """Purchases on 2016-01-<day>, one per entry of seconds (seconds after 10:00:00)."""
    start = dt.datetime(2016, 1, day, 10)
    return [
        purchase(first_id + i, **{s.PURCHASE_DATE: start + dt.timedelta(seconds=second)})
        for i, second in enumerate(seconds)
    ]


def test_a_burst_is_measured_against_its_own_day(spark: SparkSession) -> None:
    # Day 2: 150 rows at 10:00:00 and 20 other seconds of 10 rows each: 150 < 20 x 10.
    busy = day_of(2, [0] * 150 + [s for s in range(1, 21) for _ in range(10)], 1)
    # Day 3: the same 150 rows at one second, and 20 other seconds of 1 row: 150 >= 20 x 1.
    quiet = day_of(3, [0] * 150 + list(range(1, 21)), 1000)
    result = outcome(flagged(spark, busy + quiet))
    bursts = sorted(i for i, (reasons, _) in result.items() if "placeholder_burst" in reasons)
    assert bursts == list(range(1000, 1150))


def test_a_log_stamped_by_day_loses_nothing_to_bursts_and_says_so(spark: SparkSession) -> None:
    # Every row of a day at midnight: 300 rows on one day, 120 on another.
    rows = day_of(2, [-36000] * 300, 1) + day_of(3, [-36000] * 120, 1000)
    counts = quality.quality_counts(flagged(spark, rows))
    assert (counts["rows_quarantined"], counts["day_only_timestamps"]) == (0, True)
    # Stamped by the second, the same rows are not day-only.
    spread = day_of(2, list(range(300)), 1) + day_of(3, list(range(120)), 1000)
    assert quality.quality_counts(flagged(spark, spread))["day_only_timestamps"] is False


def test_actions_move_rules_between_quarantine_and_warnings(spark: SparkSession) -> None:
    rows = [
        purchase(1, **{s.COMMISSION: 25.0}),
        purchase(2, **{s.AFFILIATE_ID: 8, s.COMMISSION: 0.0}),
    ]
    actions = {
        **DEFAULT_ACTIONS,
        "direct_sale_with_commission": "warn",
        "affiliate_sale_without_commission": "quarantine",
    }
    assert outcome(flagged(spark, rows, actions=actions)) == {
        1: ([], ["direct_sale_with_commission"]),
        2: (["affiliate_sale_without_commission"], []),
    }


def test_clean_and_quarantined_rows(spark: SparkSession) -> None:
    rows = [
        purchase(1),
        purchase(2, **{s.AFFILIATE_ID: 9, s.COMMISSION: 300.0}),
        purchase(3, **{s.AFFILIATE_ID: 8, s.COMMISSION: 0.0}),
    ]
    result = flagged(spark, rows)
    clean = quality.clean_rows(result)
    purchase_fields = [f.name for f in s.CLEAN_SCHEMA.fields[:-2]]
    first, third = purchase(1), purchase(3, **{s.AFFILIATE_ID: 8})
    expected = spark.createDataFrame(
        [
            (*[first[f] for f in purchase_fields], [], "2016-01"),
            (
                *[third[f] for f in purchase_fields],
                ["affiliate_sale_without_commission"],
                "2016-01",
            ),
        ],
        s.CLEAN_SCHEMA,
    )
    assert_df_equality(clean, expected, ignore_row_order=True, ignore_nullable=True)
    quarantined = quality.quarantined_rows(result).collect()
    assert [(r[s.PURCHASE_ID], r[s.REASONS]) for r in quarantined] == [(2, ["commission_invalid"])]
    assert quarantined[0][s.SOURCE_FILE] == "file:/hand/made.csv"


def test_quality_counts(spark: SparkSession) -> None:
    rows = [
        purchase(1, **{s.PURCHASE_VALUE: -0.30}),
        purchase(2, **{s.PURCHASE_VALUE: -0.50}),
        purchase(3, **{s.PURCHASE_VALUE: -0.90, s.COMMISSION: None}),  # quarantined: not in z_min
        purchase(4, **{s.PURCHASE_VALUE: -0.45, s.AFFILIATE_ID: 8, s.COMMISSION: 0.0}),
        purchase(5, **{s.RAW_LINE: "5,x"}),
        purchase(
            6, **{s.PURCHASE_DATE: dt.datetime(2017, 1, 1), s.AFFILIATE_ID: 8, s.COMMISSION: 120.0}
        ),
    ]
    counts = quality.quality_counts(flagged(spark, rows))
    # In 6; quarantined 3 (rows 3, 5, 6); row 6 breaks two rules; row 4 only warns.
    assert counts == {
        "rows_in": 6,
        "rows_clean": 3,
        "rows_quarantined": 3,
        "z_min": -0.50,
        "day_only_timestamps": False,
        "rows_undecoded": 0,
        "first_file_undecoded": None,
        "quarantine_by_rule": {"malformed": 1, "outside_period": 1, "commission_invalid": 2},
        "warnings_by_rule": {"affiliate_sale_without_commission": 1},
    }


def test_quarantined_days_beside_clean_rows(spark: SparkSession) -> None:
    quarantine = spark.createDataFrame(
        [
            (dt.datetime(2016, 1, 2, 12), ["placeholder_burst", "commission_invalid"]),
            (dt.datetime(2016, 1, 2, 13), ["placeholder_burst"]),
            (dt.datetime(2016, 1, 3, 9), ["duplicate_purchase_id"]),
            (dt.datetime(2016, 2, 1, 9), ["outside_period"]),
            (None, ["malformed"]),
        ],
        f"{s.PURCHASE_DATE} timestamp, {s.REASONS} array<string>",
    )
    daily = spark.createDataFrame(
        [(dt.date(2016, 1, 2), 8), (dt.date(2016, 1, 3), 99)], "day date, units long"
    )
    days = quality.flag_quarantined_days(
        quality.quarantined_days(quarantine), daily, dt.date(2016, 1, 1), dt.date(2016, 1, 31), 0.1
    )
    found = {r["day"]: r.asDict() for r in days.collect()}
    jan2 = found[dt.date(2016, 1, 2)]
    assert jan2["rows_quarantined"] == 2
    assert jan2["rows_by_rule"] == {"placeholder_burst": 2, "commission_invalid": 1}
    # 2 quarantined of 2 + 8 rows: 20%, above the 10% threshold.
    assert (jan2["rows_clean"], jan2["quarantined_share"], jan2["flagged"]) == (8, 0.2, True)
    # 1 of 100 rows: 1%.
    assert (
        found[dt.date(2016, 1, 3)]["quarantined_share"],
        found[dt.date(2016, 1, 3)]["flagged"],
    ) == (0.01, False)
    # Outside the series or undated: reported, never flagged.
    assert (found[dt.date(2016, 2, 1)]["in_series"], found[dt.date(2016, 2, 1)]["flagged"]) == (
        False,
        False,
    )
    assert found[None]["rows_by_rule"] == {"malformed": 1}
    assert found[None]["flagged"] is False


def test_month_bounds_cross_the_year_end() -> None:
    assert quality.month_bounds("2015-11", "2015-12") == (
        dt.datetime(2015, 11, 1),
        dt.datetime(2016, 1, 1),
    )
    assert quality.month_bounds("", "2016-02") == (None, dt.datetime(2016, 3, 1))
