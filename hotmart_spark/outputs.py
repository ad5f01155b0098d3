"""The outputs contract in code: every table and insights section under an output root, the
stage that writes it and its grain. docs/outputs.md gives each one's columns and keys."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql.types import StructType

from hotmart_spark import schema


@dataclass(frozen=True)
class Output:
    """A table (Parquet, under the output root) or a section of report/insights.json."""

    name: str  # the table's path under the output root, or "insights/<section>"
    stage: str  # the stage that writes it
    grain: str  # what one row is
    partitioned_by: str | None = None
    # Summaries whose size does not grow with purchases are written as one file; the
    # others as the shuffle leaves them.
    one_file: bool = True
    # Read with this schema rather than the files': a table with no rows (a clean input
    # has an empty quarantine) has no data file to read a schema from.
    columns: StructType | None = None

    @property
    def is_table(self) -> bool:
        return not self.name.startswith(INSIGHTS_PREFIX)


INSIGHTS_PREFIX = "insights/"
_BY_MONTH = {"partitioned_by": schema.PURCHASE_MONTH, "one_file": False}

OUTPUTS: dict[str, Output] = {
    o.name: o
    for o in (
        Output("clean", "validate", "clean purchase", **_BY_MONTH, columns=schema.CLEAN_SCHEMA),
        Output(
            "quarantine",
            "validate",
            "quarantined row, with its reasons",
            **_BY_MONTH,
            columns=schema.QUARANTINE_SCHEMA,
        ),
        Output(f"{INSIGHTS_PREFIX}run", "validate", "rows in, clean, quarantined; the value unit"),
        Output("marts/daily_revenue", "aggregates", "day", one_file=False),
        Output(
            "marts/daily_category_niche",
            "aggregates",
            "day, category and niche with a sale",
            one_file=False,
        ),
        Output("marts/monthly_revenue", "aggregates", "month"),
        Output("marts/weekday_hour", "aggregates", "weekday and hour"),
        Output("marts/breakdowns", "aggregates", "dimension and level"),
        Output("marts/channels", "aggregates", "channel (affiliate, direct)"),
        Output("marts/affiliates", "aggregates", "affiliate", one_file=False),
        Output("marts/affiliate_concentration", "aggregates", "one row"),
        Output("marts/producer_concentration_monthly", "aggregates", "month"),
        Output("marts/producer_top_persistence", "aggregates", "month after a month with sales"),
        Output(
            "marts/producer_concentration_bootstrap",
            "aggregates",
            "measure (value, units) and bootstrap replicate",
        ),
        Output("marts/producers", "aggregates", "producer", one_file=False),
        Output("marts/pareto", "aggregates", "point of the Pareto curve (at most 1,000)"),
        Output(f"{INSIGHTS_PREFIX}producers", "aggregates", "Q1's headline numbers"),
        Output(f"{INSIGHTS_PREFIX}trends", "aggregates", "Q2's headline numbers"),
        Output("marts/buyer_rfm", "segments", "buyer", one_file=False),
        Output("marts/rfm_segments", "segments", "RFM segment"),
        Output("marts/buyer_lifetime", "segments", "buyer", one_file=False),
        Output("marts/lifetime_patterns", "segments", "(repeat days, last repeat, age) pattern"),
        Output(
            "marts/lifetime_summary", "segments", "view (segment, decile, alive x value) and group"
        ),
        Output(
            "marts/lifetime_calibration",
            "segments",
            "check (holdout, planted) and repeat-days group",
        ),
        Output("marts/rfm_segment_categories", "segments", "RFM segment and product category"),
        Output("marts/producer_clusters", "segments", "producer", one_file=False),
        Output("marts/producer_cluster_profiles", "segments", "cluster"),
        Output("marts/producer_cluster_silhouettes", "segments", "number of clusters tried"),
        Output(f"{INSIGHTS_PREFIX}segments", "segments", "Q3's headline numbers"),
        Output("marts/products", "drivers", "product", one_file=False),
        Output("marts/product_feature_groups", "drivers", "feature and level"),
        Output("marts/product_drivers", "drivers", "feature"),
        Output("marts/product_model", "drivers", "one row"),
        Output("marts/product_effects", "drivers", "estimator"),
        Output("marts/product_effect_balance", "drivers", "covariate"),
        Output(f"{INSIGHTS_PREFIX}drivers", "drivers", "Q4's headline numbers"),
        Output("marts/forecast_monthly", "forecast", "month (history and forecast)"),
        Output("marts/forecast_candidates", "forecast", "model and month ahead"),
        Output("marts/forecast_daily", "forecast", "day (history and forecast)"),
        Output("marts/forecast_backtest", "forecast", "model, horizon and half"),
        Output("marts/forecast_backtest_errors", "forecast", "model, origin and horizon"),
        Output("marts/forecast_models", "forecast", "candidate model"),
        Output("marts/forecast_quarantined_days", "forecast", "day with quarantined rows"),
        Output("marts/forecast_series", "forecast", "grouping, series and month ahead"),
        Output(
            "marts/forecast_series_models",
            "forecast",
            "grouping, series, candidate and backtest half",
        ),
        Output(
            "marts/forecast_reconciliation",
            "forecast",
            "grouping, method, series and backtest half",
        ),
        Output(f"{INSIGHTS_PREFIX}forecast", "forecast", "Q5's headline numbers"),
    )
}


def written_by(stage: str) -> tuple[str, ...]:
    """The outputs a stage writes, in the order above."""
    return tuple(name for name, output in OUTPUTS.items() if output.stage == stage)


def insights(section: str) -> str:
    """The output name of an insights.json section."""
    return f"{INSIGHTS_PREFIX}{section}"
