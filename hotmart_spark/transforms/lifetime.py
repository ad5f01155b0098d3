"""Q3, deeper: each buyer's purchase history as the BG/NBD and Gamma-Gamma models see it, and
the tables those models are fitted on, collapsed so their size does not grow with buyers.

Time is counted in days and a purchase is a purchase day: the models describe repeat
transactions, and two purchases on one day are one visit to the shop. For a buyer whose
first purchase day is d0 and last d1, observed until `end` (exclusive):

- x (`repeat_days`): purchase days after the first;
- t_x (`last_repeat_day`): d1 - d0, the day of the last repeat (0 without one);
- T (`age_days`): end - d0;
- m_x (`repeat_value`): the mean value of its purchases on repeat days (Gamma-Gamma's
  spend, which leaves the first purchase out as the models' authors do).

The BG/NBD likelihood depends on a buyer only through (x, t_x, T), so buyers sharing them
collapse to one row weighted by their number and a weighted fit on that table is the fit on
every buyer. It has at most one row per (x, t_x, T): bounded by the period's days, not by
the buyers.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.transforms.rfm import one_plus_met

PATTERN = ["repeat_days", "last_repeat_day", "age_days"]
# The stage's tables when there is nothing to model (no buyer came back on a second day):
# written empty, with these columns, as every output is written by its stage.
EMPTY_TABLES = {
    "marts/lifetime_patterns": "repeat_days int, last_repeat_day int, age_days int, "
    "buyers bigint, expected_purchase_days double, p_alive double",
    "marts/buyer_lifetime": f"{s.BUYER_ID} bigint, repeat_days int, last_repeat_day int, "
    "age_days int, repeat_value double, expected_purchase_days double, p_alive double, "
    "expected_spend double, expected_value double, segment string",
    "marts/lifetime_summary": "view string, group string, buyers bigint, mean_p_alive double, "
    "expected_purchase_days double, expected_value double, top_segment string, "
    "value_share double, rank int",
    "marts/lifetime_calibration": "group string, buyers bigint, predicted double, "
    "actual bigint, predicted_per_buyer double, actual_per_buyer double, check string",
}
# Repeat spend is collapsed on a log scale in steps of 1% (a buyer's mean is kept to within
# half a percent), so the Gamma-Gamma table is bounded too: about 100 rows per factor e of
# spend for each number of repeat days.
SPEND_STEPS_PER_LOG_UNIT = 100


def purchase_days(purchases: DataFrame) -> DataFrame:
    """One row per buyer and purchase day, with that day's value."""
    return purchases.groupBy(s.BUYER_ID, F.to_date(s.PURCHASE_DATE).alias("day")).agg(
        F.sum("value").alias("value")
    )


def histories(days: DataFrame, end: dt.date) -> DataFrame:
    """Per buyer with a purchase day before `end`: x, t_x, T and m_x (None without repeats).
    `days` is purchase_days(...)."""
    # The repeat days' value is summed as such, not as the total less the first day's: that
    # difference loses digits, and which ones depends on the order Spark added the values.
    # (The window and the aggregate share one shuffle by buyer.)
    before = days.where(F.col("day") < F.lit(end)).withColumn(
        "first_day", F.min("day").over(Window.partitionBy(s.BUYER_ID))
    )
    per_buyer = before.groupBy(s.BUYER_ID, "first_day").agg(
        F.max("day").alias("last_day"),
        F.count(F.lit(1)).alias("days"),
        F.sum(F.when(F.col("day") > F.col("first_day"), F.col("value"))).alias("repeat_total"),
    )
    repeats = F.col("days") - 1
    return per_buyer.select(
        s.BUYER_ID,
        repeats.cast("int").alias("repeat_days"),
        F.datediff("last_day", "first_day").alias("last_repeat_day"),
        F.datediff(F.lit(end), "first_day").alias("age_days"),
        F.when(repeats > 0, F.col("repeat_total") / repeats).alias("repeat_value"),
    )


def purchases_between(days: DataFrame, start: dt.date, end: dt.date) -> DataFrame:
    """Per buyer: its purchase days in [start, end)."""
    return (
        days.where((F.col("day") >= F.lit(start)) & (F.col("day") < F.lit(end)))
        .groupBy(s.BUYER_ID)
        .agg(F.count(F.lit(1)).alias("purchase_days"))
    )


def patterns(history: DataFrame, holdout: DataFrame | None = None) -> DataFrame:
    """The BG/NBD table: one row per (x, t_x, T) with its buyers; with a holdout table
    (purchases_between), also their purchase days in it. In pattern order: the fit adds up
    its rows in that order, so its last digits do not depend on how Spark split the work."""
    if holdout is None:
        table = history.groupBy(*PATTERN).agg(F.count(F.lit(1)).alias("buyers"))
    else:
        table = (
            history.join(holdout, s.BUYER_ID, "left")
            .groupBy(*PATTERN)
            .agg(
                F.count(F.lit(1)).alias("buyers"),
                F.sum(F.coalesce("purchase_days", F.lit(0))).alias("holdout_purchase_days"),
            )
        )
    return table.orderBy(*PATTERN)


def spend_step(value: Column) -> Column:
    """A positive spend rounded on the log scale to its SPEND_STEPS_PER_LOG_UNIT step."""
    return F.exp(F.round(F.log(value) * SPEND_STEPS_PER_LOG_UNIT) / SPEND_STEPS_PER_LOG_UNIT)


def spend_patterns(history: DataFrame) -> DataFrame:
    """The Gamma-Gamma table: repeat buyers with a positive mean spend, one row per (x, m_x
    step) with their number. (A relative value of 0 is the lowest price seen; a buyer whose
    repeats all cost that has no spend the model can take, and is left out of the fit.) In
    order, as patterns()."""
    return (
        history.where((F.col("repeat_days") > 0) & (F.col("repeat_value") > 0))
        .groupBy("repeat_days", spend_step(F.col("repeat_value")).alias("repeat_value"))
        .agg(F.count(F.lit(1)).alias("buyers"))
        .orderBy("repeat_days", "repeat_value")
    )


def expected_spend(p: float, q: float, v: float) -> Column:
    """Gamma-Gamma's expected mean spend of a buyer's future purchases given x and m_x
    (Fader, Hardie and Lee 2005, "RFM and CLV", eq. 5): a weighted mean of the population's
    mean, v p / (q - 1), and the buyer's own m_x, the weight of m_x growing with x."""
    x = F.col("repeat_days")
    own = F.coalesce(F.col("repeat_value"), F.lit(0.0))
    weight = (p * x) / (p * x + q - 1)
    return (1 - weight) * F.lit(v * p / (q - 1)) + weight * own


DECILES = [i / 10 for i in range(1, 10)]
# A buyer more likely alive than not is "likely active".
ALIVE_AT = 0.5


def summary(buyers: DataFrame) -> DataFrame:
    """The buyer mart summed three ways (`view`): by RFM segment, by decile of expected
    value (10 = the most), and by a 2 x 2 of P(alive) against expected value (above or at
    most its median), each cell with the RFM segment most of its buyers are in. Per group:
    buyers, mean P(alive), expected purchase days and value over the horizon, the group's
    share of that value, and its rank in the view (1 = most expected value)."""
    cuts = buyers.agg(F.percentile_approx("expected_value", DECILES, 10_000)).first()[0] or []
    decile = one_plus_met([F.col("expected_value") > cut for cut in cuts])
    median = cuts[4] if len(cuts) == len(DECILES) else 0.0
    cell = F.concat(
        F.when(F.col("p_alive") >= ALIVE_AT, "likely active").otherwise("likely gone"),
        F.lit(", "),
        F.when(F.col("expected_value") > median, "higher value").otherwise("lower value"),
    )
    segment = F.coalesce(F.col("segment"), F.lit("Other"))
    measures = [
        F.count(F.lit(1)).alias("buyers"),
        F.avg("p_alive").alias("mean_p_alive"),
        F.sum("expected_purchase_days").alias("expected_purchase_days"),
        F.sum("expected_value").alias("expected_value"),
    ]
    views = (
        buyers.groupBy(F.lit("segment").alias("view"), segment.alias("group"))
        .agg(*measures)
        .unionByName(
            buyers.groupBy(F.lit("decile").alias("view"), decile.cast("string").alias("group")).agg(
                *measures
            )
        )
        .unionByName(
            buyers.groupBy(F.lit("alive_value").alias("view"), cell.alias("group")).agg(*measures)
        )
    )
    in_cell = buyers.groupBy(cell.alias("group"), segment.alias("segment")).count()
    most = Window.partitionBy("group").orderBy(F.desc("count"), "segment")
    top_segment = (
        in_cell.withColumn("n", F.row_number().over(most))
        .where("n = 1")
        .select("group", F.col("segment").alias("top_segment"))
        .withColumn("view", F.lit("alive_value"))
    )
    per_view = Window.partitionBy("view")
    return (
        views.join(top_segment, ["view", "group"], "left")
        .withColumn("value_share", F.col("expected_value") / F.sum("expected_value").over(per_view))
        .withColumn(
            "rank",
            F.row_number().over(per_view.orderBy(F.desc("expected_value"), "group")),
        )
    )
