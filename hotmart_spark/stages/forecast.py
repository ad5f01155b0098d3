"""Revenue forecast (Q5): the next months' value and platform revenue, backtested, with intervals."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import quality
from hotmart_spark.analysis import forecast as fc
from hotmart_spark.analysis import reconcile as rc
from hotmart_spark.config import Config, ForecastConfig
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    record_in_manifest,
    write,
)
from hotmart_spark.threads import Pool

log = logging.getLogger("hotmart_spark.forecast")

SERIES_DECIMALS = 6
OTHER = "other"
CELLS_SCHEMA = (
    "grouping string, series string, model string, chosen boolean, origin string, "
    "half string, horizon string, first_day string, last_day string, month string, "
    "actual double, forecast double, note string"
)
SERIES_SCHEMA = (
    "grouping string, series string, share double, model string, method string, "
    "horizon string, month string, base double, value double, lo95 double, lo80 double, "
    "hi80 double, hi95 double"
)
SERIES_MODELS_SCHEMA = (
    "grouping string, series string, model string, half string, n long, mae double, "
    "mape double, chosen boolean"
)
RECONCILIATION_SCHEMA = (
    "grouping string, method string, series string, half string, n long, mae double, "
    "base_mae double, relative_mae double, coverage80 double, coverage95 double, "
    "chosen boolean"
)


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
    # The series' fits run on the executors while the driver fits the total.
    with Pool(1, "forecast series", spark) as pool:
        fitted = pool.submit(
            fit_series,
            read(spark, root, "marts/daily_category_niche"),
            series.values.index[0],
            daily["day"].max(),
            config.forecast,
        )
        result = fc.forecast_revenue(series, config.forecast)
        by_series = reconcile_series(fitted.result(), result, config.forecast)
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
        "forecast_series": (by_series.ahead, SERIES_SCHEMA),
        "forecast_series_models": (by_series.models, SERIES_MODELS_SCHEMA),
        "forecast_reconciliation": (by_series.scores, RECONCILIATION_SCHEMA),
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
    insights["series"] = by_series.insights
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
    for column, grouping in by_series.insights.items():
        if "skipped" in grouping:
            log.info("%s", grouping["skipped"])
            continue
        relative = grouping["relative_mae"]
        log.info(
            "per %s: %d series reconciled by %s; backtest error %s of the unreconciled",
            column,
            len(grouping["series"]) - 1,
            grouping["method"],
            "untested" if relative is None else f"{relative:.0%}",
        )
    return insights


@dataclass(frozen=True)
class SeriesForecasts:
    """The forecasts per category and per niche, reconciled with the total, as tables."""

    ahead: pd.DataFrame  # SERIES_SCHEMA
    models: pd.DataFrame  # SERIES_MODELS_SCHEMA
    scores: pd.DataFrame  # RECONCILIATION_SCHEMA
    insights: dict[str, Any]  # per grouping


def kept_labels(
    daily: DataFrame, column: str, min_share: float, max_series: int
) -> tuple[list[str], dict[str, float]]:
    """The labels of `column` forecast on their own (at least min_share of the period's value,
    the max_series largest) and each label's share; the others are forecast together as OTHER.
    One row per label is collected: it grows with the catalogue's labels, not with purchases."""
    totals = {
        r["label"]: r["value"]
        for r in daily.groupBy(F.col(column).alias("label"))
        .agg(F.sum("value").alias("value"))
        .collect()
    }
    whole = sum(totals.values())
    if whole <= 0:
        return [], {}
    shares = {label: value / whole for label, value in totals.items() if label is not None}
    ranked = sorted(shares, key=lambda label: (-shares[label], label))
    return [label for label in ranked if shares[label] >= min_share][:max_series], shares


def schema_columns(schema: str) -> list[str]:
    """The column names of a DDL schema string."""
    return [field.split()[0] for field in schema.split(", ")]


def typed(frame: pd.DataFrame, schema: str) -> pd.DataFrame:
    """The frame's columns in the schema's order and types, missing values as None: a column
    that is all missing (no backtest origin, no note) is float NaN in pandas, which Arrow
    will not turn into a string column."""
    columns = {}
    for field in schema.split(", "):
        name, kind = field.split()
        column = frame[name]
        if kind == "string":
            columns[name] = column.astype(object).where(column.notna(), None)
        elif kind == "double":
            columns[name] = column.astype(float)
        else:
            columns[name] = column.astype(bool)
    return pd.DataFrame(columns, index=frame.index)


def series_cells(
    daily: DataFrame, kept: dict[str, list[str]], first_day: Any, last_day: Any,
    settings: ForecastConfig,
) -> DataFrame:  # fmt: skip
    """Every series' fc.result_cells, one series per group on the executors: each runs the
    total's candidates and backtest on its daily values over the total's calendar."""
    parts = [
        daily.select(
            F.lit(column).alias("grouping"),
            F.when(F.col(column).isin(labels), F.col(column))
            .otherwise(F.lit(OTHER))
            .alias("series"),
            "day",
            "value",
        )
        for column, labels in kept.items()
    ]
    grouped = functools.reduce(DataFrame.unionByName, parts).groupBy("grouping", "series", "day")
    # Rounded as the total's series is, so that a cluster forecasts what a local run does.
    grouped = grouped.agg(F.round(F.sum("value"), SERIES_DECIMALS).alias("value"))
    # One task per series: a hash partitioning would put several in one task, and adaptive
    # execution would put the whole small table in one, fitting the series one after another.
    names = [(column, name) for column, labels in kept.items() for name in [*labels, OTHER]]
    tasks = daily.sparkSession.createDataFrame(
        [(column, name, task) for task, (column, name) in enumerate(names)],
        "grouping string, series string, task int",
    )
    grouped = grouped.join(F.broadcast(tasks), ["grouping", "series"])
    grouped = grouped.repartitionByRange(len(names), "task")
    calendar = pd.date_range(first_day, last_day, freq="D")

    def forecast_one(key: tuple[int, str, str], days: pd.DataFrame) -> pd.DataFrame:
        values = pd.Series(days["value"].to_numpy(dtype=float), index=pd.to_datetime(days["day"]))
        values = values.reindex(calendar, fill_value=0.0)
        series = fc.daily_series(pd.Series(calendar), pd.Series(values.to_numpy()))
        cells = fc.result_cells(fc.forecast_revenue(series, settings))
        return typed(cells.assign(grouping=key[1], series=key[2]), CELLS_SCHEMA)

    # Grouped by the task first, so the groups keep the range partitioning.
    return grouped.groupBy("task", "grouping", "series").applyInPandas(forecast_one, CELLS_SCHEMA)


def series_model_scores(cells: pd.DataFrame) -> pd.DataFrame:
    """Each series' candidates: MAE and MAPE over the backtest months, per half, as the
    total's are scored (fc.backtest_scores; the series' cells carry no intervals)."""
    frames = []
    for (grouping, series), own in cells[cells["origin"].notna()].groupby(["grouping", "series"]):
        scores = fc.backtest_scores(fc.with_intervals(own, None))
        scores = scores[scores["horizon"] == "all"]
        chosen = set(own.loc[own["chosen"], "model"])
        frames.append(
            scores.assign(grouping=grouping, series=series, chosen=scores["model"].isin(chosen))
        )
    if not frames:  # no backtest origin
        return pd.DataFrame(columns=schema_columns(SERIES_MODELS_SCHEMA))
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class SeriesCells:
    """Every series' forecast cells (fc.result_cells with grouping and series), and per
    grouping its labels forecast on their own and every label's share of the value."""

    cells: pd.DataFrame
    kept: dict[str, list[str]]
    shares: dict[str, dict[str, float]]
    skipped: dict[str, str]


def fit_series(
    daily: DataFrame, first_day: Any, last_day: Any, settings: ForecastConfig
) -> SeriesCells:
    """The forecasts per category and per niche, fitted on the executors."""
    kept, shares, skipped = {}, {}, {}
    for column in settings.series_by:
        labels, shares[column] = kept_labels(
            daily, column, settings.series_min_share, settings.max_series
        )
        if not labels or len(shares[column]) < 2:
            skipped[column] = (
                f"not forecast per {column}: it has fewer than two labels, or none with "
                f"forecast.series_min_share ({settings.series_min_share:.0%}) of the value"
            )
            continue
        kept[column] = labels
    # Bounded: series x candidates x backtest origins x months.
    cells = (
        series_cells(daily, kept, first_day, last_day, settings).toPandas()
        if kept
        else pd.DataFrame(columns=schema_columns(CELLS_SCHEMA))
    )
    return SeriesCells(cells, kept, shares, skipped)


def reconcile_series(
    fitted: SeriesCells, total: fc.ForecastResult, settings: ForecastConfig
) -> SeriesForecasts:
    """Each grouping's forecasts reconciled with the total."""
    cells, kept, shares = fitted.cells, fitted.kept, fitted.shares
    insights: dict[str, Any] = {column: {"skipped": why} for column, why in fitted.skipped.items()}
    if not kept:
        empty = [
            pd.DataFrame(columns=schema_columns(s))
            for s in (SERIES_SCHEMA, SERIES_MODELS_SCHEMA, RECONCILIATION_SCHEMA)
        ]
        return SeriesForecasts(*empty, insights)
    top = fc.result_cells(total).assign(series=rc.TOP)
    horizons = [str(h) for h in range(1, settings.horizon_months + 1)]
    ahead, scores = [], []
    for column, labels in kept.items():
        own = cells[cells["grouping"] == column]
        order = [*labels, OTHER] if (own["series"] == OTHER).any() else labels
        chosen = pd.concat([top[top["chosen"]], *(
            own[own["chosen"] & (own["series"] == s)] for s in order)], ignore_index=True)  # fmt: skip
        result = rc.reconcile(chosen.drop(columns="grouping"), horizons)
        models = chosen.dropna(subset=["model"]).groupby("series")["model"].first()
        other_share = sum(v for k, v in shares[column].items() if k not in labels)
        share = {**{k: shares[column][k] for k in labels}, OTHER: other_share, rc.TOP: 1.0}
        ahead.append(
            result.ahead.assign(
                grouping=column,
                share=result.ahead["series"].map(share),
                model=result.ahead["series"].map(models),
                method=result.method,
            )
        )
        scores.append(result.scores.assign(grouping=column))
        insights[column] = series_insights(result, share, models, own)
    return SeriesForecasts(
        pd.concat(ahead, ignore_index=True)[schema_columns(SERIES_SCHEMA)],
        series_model_scores(cells)[schema_columns(SERIES_MODELS_SCHEMA)],
        pd.concat(scores, ignore_index=True)[schema_columns(RECONCILIATION_SCHEMA)],
        insights,
    )


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def series_insights(
    result: rc.Reconciled, share: dict[str, float], models: pd.Series, cells: pd.DataFrame
) -> dict[str, Any]:
    """One grouping's reconciled months per series, and whether reconciling helped."""
    pooled = result.scores[
        (result.scores["series"] == rc.ALL_SERIES) & result.scores["chosen"]
    ].set_index("half")["relative_mae"]
    half = fc.EVALUATION if fc.EVALUATION in pooled.index else fc.SELECTION
    relative = float(pooled[half]) if half in pooled.index else None
    held = result.scores[result.scores["chosen"] & (result.scores["half"] == half)]
    held = held.set_index("series")
    series = []
    for name, rows in result.ahead.groupby("series", sort=False):
        months = rows[rows["horizon"] != fc.TOTAL]
        whole = rows[rows["horizon"] == fc.TOTAL].iloc[0]
        coverage = held.loc[name] if name in held.index else {}
        series.append(
            {
                "series": name,
                "share": share[name],
                "model": models.get(name),
                # How often the intervals held in the backtest, on the half scored.
                "coverage80": _number(coverage.get("coverage80")),
                "coverage95": _number(coverage.get("coverage95")),
                "months": months[["month", "base", "value", *fc.INTERVAL_COLUMNS]].to_dict(
                    "records"
                ),
                "total": {c: float(whole[c]) for c in ["base", "value", *fc.INTERVAL_COLUMNS]},
            }
        )
    return {
        "method": result.method,
        "scored_half": half,
        # The reconciled forecasts' backtest MAE over the unreconciled ones', geometric mean
        # over the series (below 1: reconciling helped).
        "relative_mae": relative,
        "helped": relative is not None and relative < 1,
        "series": series,
        "notes": result.notes
        + [f"{s}: {n}" for s, n in zip(cells["series"], cells["note"], strict=True) if pd.notna(n)],
    }


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


STAGE = Stage(
    "forecast",
    reads=("quarantine", "marts/daily_revenue", "marts/daily_category_niche"),
    run=run,
)
