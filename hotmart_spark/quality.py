"""Validation rules: each a named Column; rows that break a quarantine rule leave the clean table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s

RULE_NAMES: tuple[str, ...] = (
    "malformed",
    "required_null",
    "duplicate_purchase_id",
    "outside_period",
    "purchase_before_creation",
    "commission_invalid",
    "direct_sale_with_commission",
    "affiliate_sale_without_commission",
    "placeholder_burst",
    "value_out_of_range",
)

# Per-row facts that depend on other rows, added before the rules are evaluated.
DUPLICATE_RANK = "_duplicate_rank"
IN_BURST = "_in_burst"
# True for a row on a day of several rows that all share one stamp; null on a day of one row.
ONE_STAMP_DAY = "_one_stamp_day"
SECOND, DAY = "_second", "_day"
ROWS_IN_SECOND, ROWS_IN_DAY = "_rows_in_second", "_rows_in_day"
SECOND_RANK, SECONDS_IN_DAY = "_second_rank", "_seconds_in_day"
# When at least this share of the rows on days of several rows sits on days whose rows all
# share one stamp, the data's timestamps carry the day only.
DAY_ONLY_SHARE = 0.99
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class Rule:
    name: str
    broken: Column


def rules(period_start: dt.date, period_end: dt.date, max_abs_z: float) -> list[Rule]:
    """Every validation rule, in RULE_NAMES order; each is true where a row breaks it."""
    malformed = F.col(s.RAW_LINE).isNotNull()
    commission = F.col(s.COMMISSION)
    direct = F.col(s.AFFILIATE_ID) == F.col(s.PRODUCER_ID)
    day = F.to_date(s.PURCHASE_DATE)
    parsed_rules = [
        Rule("required_null", F.greatest(*[F.col(c).isNull() for c in s.NOT_NULL_COLUMNS])),
        Rule("duplicate_purchase_id", F.col(DUPLICATE_RANK) > 1),
        Rule("outside_period", (day < F.lit(period_start)) | (day > F.lit(period_end))),
        Rule(
            "purchase_before_creation",
            # A stamp that stands for a whole day (its day's rows share it) is compared by day:
            # a purchase on the creation day may be stamped before the creation's time.
            F.when(
                F.coalesce(F.col(ONE_STAMP_DAY), F.lit(False)),
                day < F.to_date(s.PRODUCT_CREATION_DATE),
            ).otherwise(F.col(s.PURCHASE_DATE) < F.col(s.PRODUCT_CREATION_DATE)),
        ),
        Rule("commission_invalid", commission.isNull() | ~commission.between(0.0, 100.0)),
        Rule("direct_sale_with_commission", direct & (commission > 0)),
        Rule("affiliate_sale_without_commission", ~direct & (commission == 0)),
        Rule("placeholder_burst", F.col(IN_BURST)),
        # No price is that far from the mean (the sample's largest is 124.6 sd), and an
        # infinite one turns every sum it enters into Infinity or NaN.
        Rule("value_out_of_range", F.abs(s.PURCHASE_VALUE) > F.lit(max_abs_z)),
    ]
    # The other rules read parsed fields, which a malformed line does not have.
    return [Rule("malformed", malformed)] + [
        Rule(r.name, ~malformed & F.coalesce(r.broken, F.lit(False))) for r in parsed_rules
    ]


def with_cross_row_facts(
    purchases: DataFrame, burst_min_rows: int, burst_ratio: float
) -> DataFrame:
    """Adds each row's rank among rows sharing its purchase_id, whether its second is a
    placeholder burst, and whether its day's rows all share one stamp."""
    # Any fixed order over the row's content keeps "the first" the same on every run,
    # whatever order the files are read in.
    order = [F.col(c).asc_nulls_last() for c in (s.PURCHASE_DATE, *s.REQUIRED_COLUMNS)]
    by_id = Window.partitionBy(s.PURCHASE_ID).orderBy(*order, F.col(s.SOURCE_FILE))
    ranked = purchases.withColumn(
        DUPLICATE_RANK,
        F.when(
            F.col(s.PURCHASE_ID).isNotNull() & F.col(s.RAW_LINE).isNull(),
            F.row_number().over(by_id),
        ),
    )
    # One window per day, ordered by second: the rows of the row's second (its peers in the
    # order), of its day, and the day's distinct seconds, with one shuffle and no join, so the
    # input is read once.
    parsed = F.col(s.RAW_LINE).isNull() & F.col(s.PURCHASE_DATE).isNotNull()
    dated = ranked.withColumn(
        SECOND, F.when(parsed, F.unix_timestamp(F.col(s.PURCHASE_DATE)))
    ).withColumn(DAY, F.when(parsed, F.to_date(s.PURCHASE_DATE)))
    by_day = Window.partitionBy(DAY)
    same_second = by_day.orderBy(SECOND).rangeBetween(0, 0)
    counted = (
        dated.withColumn(ROWS_IN_SECOND, F.count(SECOND).over(same_second))
        .withColumn(ROWS_IN_DAY, F.count(SECOND).over(by_day))
        .withColumn(SECOND_RANK, F.dense_rank().over(by_day.orderBy(SECOND)))
        .withColumn(SECONDS_IN_DAY, F.max(SECOND_RANK).over(by_day))
    )
    # The day's other seconds: how many rows each holds on average.
    others = (F.col(ROWS_IN_DAY) - F.col(ROWS_IN_SECOND)) / (F.col(SECONDS_IN_DAY) - 1)
    burst = (
        parsed
        & (F.col(SECONDS_IN_DAY) > 1)
        & (F.col(ROWS_IN_SECOND) >= burst_min_rows)
        & (F.col(ROWS_IN_SECOND) >= F.lit(burst_ratio) * others)
    )
    return (
        counted.withColumn(IN_BURST, F.coalesce(burst, F.lit(False)))
        .withColumn(
            ONE_STAMP_DAY,
            F.when(parsed & (F.col(ROWS_IN_DAY) > 1), F.col(SECONDS_IN_DAY) == 1),
        )
        .drop(SECOND, DAY, ROWS_IN_SECOND, ROWS_IN_DAY, SECOND_RANK, SECONDS_IN_DAY)
    )


def flag(
    purchases: DataFrame,
    period_start: dt.date,
    period_end: dt.date,
    burst_min_rows: int,
    burst_ratio: float,
    max_abs_z: float,
    actions: Mapping[str, str],
) -> DataFrame:
    """Loaded purchases plus `reasons` (quarantine rules broken), `warnings`, purchase_month
    and ONE_STAMP_DAY (for quality_counts; clean_rows leaves it out)."""
    return with_reasons(
        with_cross_row_facts(purchases, burst_min_rows, burst_ratio),
        period_start,
        period_end,
        max_abs_z,
        actions,
    )


def with_reasons(
    checked: DataFrame,
    period_start: dt.date,
    period_end: dt.date,
    max_abs_z: float,
    actions: Mapping[str, str],
) -> DataFrame:
    """flag's second half, on purchases with_cross_row_facts has already seen: a projection,
    so that validation can resolve an "auto" period from the same kept rows first."""
    checks = rules(period_start, period_end, max_abs_z)

    def broken_names(action: str) -> Column:
        names = [F.when(r.broken, F.lit(r.name)) for r in checks if actions[r.name] == action]
        return F.array_compact(F.array(*names)) if names else F.array().cast("array<string>")

    return (
        checked.withColumn(s.REASONS, broken_names("quarantine"))
        .withColumn(s.WARNINGS, broken_names("warn"))
        .withColumn(s.PURCHASE_MONTH, F.date_format(s.PURCHASE_DATE, "yyyy-MM"))
        .drop(DUPLICATE_RANK, IN_BURST)
    )


def month_bounds(from_month: str, to_month: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[first instant of from_month, first instant after to_month); None where open."""

    def first_day(month: str) -> dt.datetime:
        year, number = map(int, month.split("-"))
        return dt.datetime(year, number, 1)

    start = first_day(from_month) if from_month else None
    end = None
    if to_month:
        last = first_day(to_month)
        end = dt.datetime(last.year + last.month // 12, last.month % 12 + 1, 1)
    return start, end


def within_months(purchases: DataFrame, from_month: str, to_month: str) -> DataFrame:
    """The purchases of a month range (YYYY-MM, inclusive; empty means open), plus the rows
    whose purchase_date could not be read: they belong to no month, so every run keeps them
    and quarantines them under the undated partition."""
    start, end = month_bounds(from_month, to_month)
    date = F.col(s.PURCHASE_DATE)
    in_range = F.lit(True)
    if start is not None:
        in_range = in_range & (date >= F.lit(start))
    if end is not None:
        in_range = in_range & (date < F.lit(end))
    return purchases.where(date.isNull() | in_range)


def clean_rows(flagged: DataFrame) -> DataFrame:
    """Rows that broke no quarantine rule, in the clean table's layout."""
    return flagged.where(F.size(s.REASONS) == 0).select(*s.CLEAN_SCHEMA.fieldNames())


def quarantined_rows(flagged: DataFrame) -> DataFrame:
    """Rows that broke at least one quarantine rule, with every column and their reasons."""
    return flagged.where(F.size(s.REASONS) > 0).drop(ONE_STAMP_DAY)


def quality_counts(flagged: DataFrame) -> dict[str, object]:
    """Rows in, clean, quarantined, rows per rule and z_min of the clean rows, in one pass."""
    is_clean = F.size(s.REASONS) == 0
    # A text reader puts U+FFFD where bytes do not decode in its encoding.
    undecoded = F.greatest(
        *[
            F.coalesce(F.col(c).contains(REPLACEMENT), F.lit(False))
            for c in (*s.TEXT_COLUMNS, s.RAW_LINE)
        ]
    )

    row = flagged.agg(
        F.count(F.lit(1)).alias("rows_in"),
        F.sum(F.when(is_clean, 1).otherwise(0)).alias("rows_clean"),
        F.min(F.when(is_clean, F.col(s.PURCHASE_VALUE))).alias("z_min"),
        F.count(F.when(undecoded, 1)).alias("rows_undecoded"),
        F.min(F.when(undecoded, F.col(s.SOURCE_FILE))).alias("first_file_undecoded"),
        F.count(ONE_STAMP_DAY).alias("rows_on_busy_days"),
        F.count(F.when(F.col(ONE_STAMP_DAY), 1)).alias("rows_on_one_stamp_days"),
        *_rows_per_rule(s.REASONS),
        *_rows_per_rule(s.WARNINGS),
    ).first()
    rows_in = row["rows_in"]
    rows_clean = row["rows_clean"] or 0
    busy, one_stamp = row["rows_on_busy_days"], row["rows_on_one_stamp_days"]
    return {
        "rows_in": rows_in,
        "rows_clean": rows_clean,
        "rows_quarantined": rows_in - rows_clean,
        "z_min": row["z_min"],
        "day_only_timestamps": bool(busy) and one_stamp >= DAY_ONLY_SHARE * busy,
        "rows_undecoded": row["rows_undecoded"],
        "first_file_undecoded": row["first_file_undecoded"],
        "quarantine_by_rule": _by_rule(s.REASONS, row),
        "warnings_by_rule": _by_rule(s.WARNINGS, row),
    }


def _rows_per_rule(array: str) -> list[Column]:
    """Per rule, the rows whose `array` column (reasons or warnings) names it."""
    return [
        F.sum(F.when(F.array_contains(array, name), 1).otherwise(0)).alias(f"{array}:{name}")
        for name in RULE_NAMES
    ]


def _by_rule(array: str, *rows: Row) -> dict[str, int]:
    """The _rows_per_rule counts of `array`, summed over aggregate rows, without the zeros."""
    counts = {name: sum(row[f"{array}:{name}"] or 0 for row in rows) for name in RULE_NAMES}
    return {name: n for name, n in counts.items() if n}


def table_counts(clean: DataFrame, quarantine: DataFrame) -> dict[str, object]:
    """Rows, rows per rule and z_min over the whole clean and quarantine tables (every month):
    what the marts built from them cover, after a run that replaced only some months."""
    kept = clean.agg(
        F.count(F.lit(1)).alias("rows"),
        F.min(s.PURCHASE_VALUE).alias("z_min"),
        *_rows_per_rule(s.WARNINGS),
    ).first()
    moved = quarantine.agg(
        F.count(F.lit(1)).alias("rows"), *_rows_per_rule(s.REASONS), *_rows_per_rule(s.WARNINGS)
    ).first()
    return {
        "rows_in": kept["rows"] + moved["rows"],
        "rows_clean": kept["rows"],
        "rows_quarantined": moved["rows"],
        "z_min": kept["z_min"],
        "quarantine_by_rule": _by_rule(s.REASONS, moved),
        "warnings_by_rule": _by_rule(s.WARNINGS, kept, moved),
    }


def quarantined_days(quarantine: DataFrame) -> DataFrame:
    """Per purchase day: quarantined rows and rows per rule (day is null for undated rows)."""
    day = F.to_date(s.PURCHASE_DATE).alias("day")
    rows = quarantine.groupBy(day).agg(F.count(F.lit(1)).alias("rows_quarantined"))
    by_rule = (
        quarantine.select(day, F.explode(s.REASONS).alias("rule"))
        .groupBy("day", "rule")
        .agg(F.count(F.lit(1)).alias("rows"))
        .groupBy("day")
        .agg(F.map_from_entries(F.collect_list(F.struct("rule", "rows"))).alias("rows_by_rule"))
    )
    return rows.join(by_rule, rows["day"].eqNullSafe(by_rule["day"])).select(
        rows["day"], "rows_quarantined", "rows_by_rule"
    )


def flag_quarantined_days(
    quarantined: DataFrame,
    daily: DataFrame,
    first_day: dt.date,
    last_day: dt.date,
    threshold: float,
) -> DataFrame:
    """quarantined_days beside each day's clean rows (`units` of the daily mart); days of
    [first_day, last_day] whose quarantined rows are at least `threshold` of all their rows are
    flagged. Series keep only clean rows: such days are reported, not mended."""
    clean = F.coalesce(F.col("units"), F.lit(0))
    in_series = F.col("day").between(F.lit(first_day), F.lit(last_day))
    share = F.col("rows_quarantined") / (F.col("rows_quarantined") + F.col("rows_clean"))
    return (
        quarantined.join(daily.select("day", "units"), "day", "left")
        .withColumn("rows_clean", clean)
        .withColumn("quarantined_share", share)
        .withColumn("in_series", F.coalesce(in_series, F.lit(False)))
        .withColumn("flagged", F.col("in_series") & (F.col("quarantined_share") >= threshold))
        .drop("units")
    )
