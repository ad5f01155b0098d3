"""Validate raw purchases: clean rows to clean/ (by month), broken rows to quarantine/ with reasons."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import generate, inputs, jdbc, quality
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.stages.stage import Stage, publish_insights, read, record_in_manifest, write
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
        resolved = inputs.resolve_input(source, config.input.format, config.input.separator)
        purchases = quality.within_months(
            inputs.read_purchases(spark, resolved, config.input.encoding), *months
        )
    flagged = quality.flag(
        purchases,
        config.period.start,
        config.period.end,
        config.quality.placeholder_burst_min_rows,
        config.quality.max_abs_z,
        config.quality.actions,
    )
    with persisted(flagged) as flagged:
        counts = quality.quality_counts(flagged)
        timings["read_and_check_s"] = round(time.time() - started, 2)
        if counts["rows_in"] == 0:
            raise UserError(f"input has no rows: {source}")
        step = time.time()
        for table, rows in (
            ("clean", quality.clean_rows(flagged)),
            ("quarantine", quality.quarantined_rows(flagged)),
        ):
            write(rows, config, table, replaced_months)
        timings["write_s"] = round(time.time() - step, 2)
    # The run's months (and the undated rows) of the tables as written, other months aside.
    written_clean, written_quarantine = (
        quality.within_months(read(spark, config.paths.output, table), *months).count()
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
        "period_start": config.period.start.isoformat(),
        "period_end": config.period.end.isoformat(),
        "parameters": config.to_dict(),
        "timings": timings,
    }
    manifest = record_in_manifest(config, "validate", record)
    publish_insights(config, "run", run_insights(counts, config, generate.is_generated(source)))
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


def run_insights(counts: dict[str, Any], config: Config, synthetic: bool) -> dict[str, Any]:
    """What the report says of the data: rows in, clean and quarantined (by rule), the value
    unit and the period."""
    return {
        "rows_in": counts["rows_in"],
        "rows_clean": counts["rows_clean"],
        "rows_quarantined": counts["rows_quarantined"],
        "quarantine_by_rule": counts["quarantine_by_rule"],
        "warnings_by_rule": counts["warnings_by_rule"],
        "value_unit": config.value.unit,
        "z_min": counts["z_min"],
        "period_start": config.period.start.isoformat(),
        "period_end": config.period.end.isoformat(),
        "synthetic": synthetic,
    }


STAGE = Stage("validate", reads=(), run=run)
