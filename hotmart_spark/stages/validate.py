"""Validate raw purchases: clean rows to clean/ (by month), broken rows to quarantine/ with reasons."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import generate, inputs, jdbc, quality
from hotmart_spark import schema as s
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import local_path
from hotmart_spark.stages.stage import (
    Stage,
    publish_insights,
    quality_gate_failed,
    read,
    record_in_manifest,
    write,
)
from hotmart_spark.tables import persisted

log = logging.getLogger("hotmart_spark.validate")


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    timings: dict[str, float] = {}
    source = config.paths.input
    months = (config.input.from_month, config.input.to_month)
    # A month range replaces just its months (and the undated rows) of the tables.
    replaced_months = months if any(months) else None
    if jdbc.is_jdbc(source):
        resolved = jdbc.parse_source(source)
        purchases = jdbc.read_purchases(spark, resolved, config.jdbc, config.input)
    else:
        resolved = inputs.resolve_input(
            source,
            config.input.format,
            config.input.separator,
            config.input.encoding,
            config.input.skip_foreign_files,
        )
        purchases = quality.within_months(
            inputs.read_purchases(spark, resolved, config.input.encoding), *months
        )
    # The period is read off the kept rows, so an "auto" period costs no pass of its own
    # over the input (a whole CSV parse: 4.8 s of the 28 before the clean table at 1.6M).
    checked = quality.with_cross_row_facts(
        purchases,
        config.quality.placeholder_burst_min_rows,
        config.quality.placeholder_burst_ratio,
    )
    with persisted(checked) as checked:
        period = resolve_period(checked, config.period.start, config.period.end)
        if period != (config.period.start, config.period.end):
            # Stages that start once clean/ is written read the period from here.
            publish_insights(
                config,
                "run",
                {"period_start": period[0].isoformat(), "period_end": period[1].isoformat()},
            )
        flagged = quality.with_reasons(
            checked, *period, config.quality.max_abs_z, config.quality.actions
        )
        counts = quality.quality_counts(flagged)
        timings["read_and_check_s"] = round(time.time() - started, 2)
        if counts["rows_in"] == 0 and replaced_months is None:
            raise UserError(f"input has no rows: {source}")
        if counts["rows_in"] == 0:
            # A month with no purchases is an answer: its partitions are replaced by none.
            log.warning("no rows in months %s to %s of %s", *months, source)
        if counts["rows_undecoded"] and isinstance(resolved, inputs.InputFiles):
            raise UserError(
                f"{local_path(counts['first_file_undecoded'])}: {counts['rows_undecoded']:,} rows "
                "hold bytes "
                f"that are not {config.input.encoding}; set input.encoding to the file's "
                "encoding (ISO-8859-1 for the known exports)"
            )
        step = time.time()
        rows_written = {
            table: write(rows, config, table, replaced_months)
            for table, rows in (
                ("clean", quality.clean_rows(flagged)),
                ("quarantine", quality.quarantined_rows(flagged)),
            )
        }
        timings["write_s"] = round(time.time() - step, 2)
    written = {table: read(spark, config.paths.output, table) for table in ("clean", "quarantine")}
    if replaced_months is None:
        # Counted as they were written (an Observation), so no table is read back.
        written_clean, written_quarantine = rows_written["clean"], rows_written["quarantine"]
    else:
        # The run's months (and the undated rows) of the tables as written, other months
        # aside: the staged tables also hold the months the run kept.
        written_clean, written_quarantine = (
            quality.within_months(written[table], *months).count()
            for table in ("clean", "quarantine")
        )
    if written_clean + written_quarantine != counts["rows_in"]:
        raise RuntimeError(
            f"rows in ({counts['rows_in']}) != clean ({written_clean}) + "
            f"quarantined ({written_quarantine}) as written"
        )
    timings["total_s"] = round(time.time() - started, 2)
    record = {
        "input": resolved.describe(),
        "months": {"from": months[0] or None, "to": months[1] or None},
        "value_unit": config.value.unit,
        **counts,
        "period_start": period[0].isoformat(),
        "period_end": period[1].isoformat(),
        "parameters": config.to_dict(),
        "timings": timings,
    }
    manifest = record_in_manifest(config, "validate", record)
    # The report describes the tables the marts are built from: after a month range, every
    # month of them, with the run's own months beside.
    described = counts if replaced_months is None else quality.table_counts(**written)
    day_only = counts["day_only_timestamps"]
    generated = not jdbc.is_jdbc(source) and generate.is_generated(source)
    section = run_insights(described, day_only, config, period, generated)
    truth = generate.read_truth(source) if generated else None
    if truth is not None:
        section["planted"] = truth
    if replaced_months is not None:
        section["last_run"] = {"from": months[0] or None, "to": months[1] or None, **counts}
    publish_insights(config, "run", section)
    share = counts["rows_quarantined"] / max(counts["rows_in"], 1)
    if share > config.quality.max_quarantine_share:
        quality_gate_failed(
            f"{share:.1%} of the rows were quarantined ({counts['rows_quarantined']:,} of "
            f"{counts['rows_in']:,}), more than quality.max_quarantine_share = "
            f"{config.quality.max_quarantine_share:.1%}: see quarantine/ under "
            f"{config.paths.output}"
        )
    log.info(
        "rows in %d = clean %d + quarantined %d; z_min %s",
        counts["rows_in"],
        counts["rows_clean"],
        counts["rows_quarantined"],
        counts["z_min"],
    )
    for kind in ("quarantine_by_rule", "warnings_by_rule"):
        for rule, n in counts[kind].items():
            log.info("%s %-36s %d", kind.split("_")[0], rule, n)
    log.info("manifest: %s", manifest)
    return record


def resolve_period(
    purchases: DataFrame, start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    """The period as configured, with "auto" (None) as the data's first or last day."""
    if start is not None and end is not None:
        return start, end
    first, last = purchases.agg(
        F.min(F.to_date(s.PURCHASE_DATE)), F.max(F.to_date(s.PURCHASE_DATE))
    ).first()
    if first is None:
        raise UserError("period is 'auto' but no purchase_date of the input could be read")
    log.info("period auto: %s to %s", start or first, end or last)
    return start or first, end or last


def run_insights(
    counts: dict[str, Any],
    day_only_timestamps: bool,
    config: Config,
    period: tuple[dt.date, dt.date],
    synthetic: bool,
) -> dict[str, Any]:
    """What the report says of the data: rows in, clean and quarantined (by rule), the value
    unit, the period and the timestamps' resolution."""
    return {
        "rows_in": counts["rows_in"],
        "rows_clean": counts["rows_clean"],
        "rows_quarantined": counts["rows_quarantined"],
        "quarantine_by_rule": counts["quarantine_by_rule"],
        "warnings_by_rule": counts["warnings_by_rule"],
        "value_unit": config.value.unit,
        "z_min": counts["z_min"],
        "day_only_timestamps": day_only_timestamps,
        "period_start": period[0].isoformat(),
        "period_end": period[1].isoformat(),
        "synthetic": synthetic,
    }


STAGE = Stage("validate", reads=(), run=run)
