"""Revenue forecast (Q5): the next months' value and platform revenue, backtested, with intervals."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import quality
from hotmart_spark.analysis import forecast as fc
from hotmart_spark.config import Config
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    record_in_manifest,
    write,
)

log = logging.getLogger("hotmart_spark.forecast")

SERIES_DECIMALS = 6


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    root, out = config.paths.input, output_root(config)
    # One row per day and per quarantined day: these grow with the calendar, not with purchases.
    daily_mart = read(spark, root, "marts/daily_revenue")
    # Daily sums differ in their last bits with the order Spark adds them in (partitions,
    # executors), and the optimisers turn that into different fits: the series is rounded
    # to 1e-6 of a unit first, so a cluster run forecasts what a local run does.
    daily = (
        daily_mart.select("day", F.round("value", SERIES_DECIMALS).alias("value"), "units")
        .orderBy("day")
        .toPandas()
    )
    series = fc.daily_series(daily["day"], daily["value"])
    units = pd.Series(daily["units"].to_numpy(), index=pd.to_datetime(daily["day"]))
    result = fc.forecast_revenue(series, config.forecast)
    write(
        quality.flag_quarantined_days(
            quality.quarantined_days(read(spark, root, "quarantine")),
            daily_mart,
            series.values.index[0].date(),
            series.values.index[-1].date(),
            config.forecast.flag_quarantined_share,
        ),
        config,
        "marts/forecast_quarantined_days",
    )
    flagged = (
        read(spark, out, "marts/forecast_quarantined_days")
        .where("flagged")
        .orderBy("day")
        .collect()
    )
    months = fc.monthly_table(result, config.value.platform_fee_rate)
    backtest = result.backtest.assign(chosen=result.backtest["model"] == result.chosen)
    tables = {
        "forecast_monthly": (months, None),
        "forecast_candidates": (fc.candidates_table(result), None),
        "forecast_daily": (fc.daily_table(result, units), None),
        "forecast_backtest": (backtest, fc.BACKTEST_SCHEMA),
        "forecast_backtest_errors": (result.errors, fc.ERRORS_SCHEMA),
        "forecast_models": (result.models, None),
    }
    for name, (table, schema) in tables.items():
        write(spark.createDataFrame(table, schema), config, f"marts/{name}")

    insights = forecast_insights(
        result,
        series,
        months,
        flagged,
        config.value.unit,
        config.forecast.origin_step_days,
    )
    publish_insights(config, "forecast", insights)
    record_in_manifest(
        config,
        "forecast",
        {
            "input": root,
            "value_unit": config.value.unit,
            "model": result.chosen,
            "series_days": len(series.values),
            "notes": result.notes,
            "timings": {
                "fit_s": round(result.fit_seconds, 2),
                "total_s": round(time.time() - started, 2),
            },
        },
    )
    for r in insights["months"]:
        log.info(
            "%s: %.0f %s (80%%: %.0f-%.0f, 95%%: %.0f-%.0f)",
            r["month"],
            r["value"],
            config.value.unit,
            r["lo80"],
            r["hi80"],
            r["lo95"],
            r["hi95"],
        )
    total = insights["total"]
    log.info(
        "next %d months together: %.0f (95%%: %.0f-%.0f)",
        total["months"],
        total["mean"],
        total["lo95"],
        total["hi95"],
    )
    log.info(
        "model %s chosen by MAE on the earlier backtest origins; fitted in %.1f s",
        result.chosen,
        result.fit_seconds,
    )
    for note in result.notes:
        log.info("note: %s", note)
    return insights


def forecast_insights(
    result: fc.ForecastResult,
    series: fc.DailySeries,
    months: pd.DataFrame,
    flagged: list[Row],
    unit: str,
    origin_step_days: int,
) -> dict[str, Any]:
    """Q5's headline numbers: the months ahead with their intervals, every model's backtest,
    and what the series left out or flagged."""
    ahead = months[months["kind"] == "forecast"]
    return {
        "value_unit": unit,
        "last_complete_month": str(series.last_complete_month),
        "model": result.chosen,
        "model_spec": result.forecasts[result.chosen].spec,
        "months": ahead.drop(columns=["kind", "model"]).to_dict("records"),
        "total": {"months": len(ahead), **result.forecasts[result.chosen].total},
        # Every model's error and coverage where it is out of sample for the choice.
        "backtest": fc.scored_backtest(result)
        .reset_index()
        .drop(columns=["horizon"])
        .to_dict("records"),
        "backtest_half": fc.scored_half(result),
        "backtest_origins": [str(o) for o in result.origins],
        "first_scored_origin": None if result.split is None else str(result.split),
        "origin_step_days": origin_step_days,
        "yearly_seasonality": result.yearly,
        "improvement_over_baselines": fc.improvement_over_baselines(result),
        "flagged_days": [
            {
                "day": r["day"].isoformat(),
                "rows_quarantined": r["rows_quarantined"],
                "quarantined_share": r["quarantined_share"],
                "rows_by_rule": r["rows_by_rule"],
            }
            for r in flagged
        ],
        "zero_days": [str(d) for d in series.zero_days],
        "unused_days": len(series.unused_days),
        "notes": result.notes,
        "fit_seconds": round(result.fit_seconds, 2),
    }


STAGE = Stage("forecast", reads=("quarantine", "marts/daily_revenue"), run=run)
