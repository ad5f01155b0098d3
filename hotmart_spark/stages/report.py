"""The storytelling report: report/report.html (self-contained), its charts as PNG, insights.json."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import outputs, records
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import local_path, write_atomically
from hotmart_spark.report.page import MARTS, SECTIONS, build_report
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    record_in_manifest,
)

log = logging.getLogger("hotmart_spark.report")


def read_insights(root: str) -> dict[str, Any]:
    """insights.json of an earlier run, with every section the report needs."""
    insights = records.read_insights(root)
    if not insights:
        raise UserError(f"no {records.INSIGHTS} under {root}: run the analysis jobs first")
    missing = [
        f"{name} (the {outputs.OUTPUTS[outputs.insights(name)].stage} job)"
        for name in SECTIONS
        if name not in insights
    ]
    if missing:
        raise UserError(f"{root}/{records.INSIGHTS} lacks {', '.join(missing)}: run those first")
    return insights


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    root, out = config.paths.input, output_root(config)
    insights = read_insights(root)
    # Every report mart is a summary (at most 1,000 Pareto points), never the purchases.
    marts = {name: read(spark, root, f"marts/{name}").toPandas() for name in MARTS}
    report = build_report(insights, marts)
    folder = records.local_root(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in report.charts.items():
        write_atomically(folder / f"{name}.png", png)
    page = folder / "report.html"
    write_atomically(page, report.html.encode("utf-8"))
    if local_path(out).resolve() != local_path(root).resolve():
        for section in SECTIONS:
            publish_insights(config, section, insights[section])
    record_in_manifest(
        config,
        "report",
        {
            "input": root,
            "report": str(page),
            "charts": sorted(report.charts),
            "timings": {"total_s": round(time.time() - started, 2)},
        },
    )
    log.info("report written in %.1f s", time.time() - started)
    print(f"report: {page.resolve()}")
    return {"report": str(page), "charts": sorted(report.charts)}


STAGE = Stage(
    "report",
    reads=(*(f"marts/{name}" for name in MARTS), *(outputs.insights(s) for s in SECTIONS)),
    run=run,
)
