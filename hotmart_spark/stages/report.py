"""The storytelling report: report/report.html (self-contained), its charts as PNG, insights.json."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import filesystem, outputs, records, runs
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.report.page import MARTS, SECTIONS, answered, build_report
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    publish_insights,
    read,
    read_insights,
    record_in_manifest,
    report_folder,
)

log = logging.getLogger("hotmart_spark.report")

PAGE = "report.html"


def report_insights(root: str) -> dict[str, Any]:
    """insights.json under the input root, with every section the report needs."""
    insights = read_insights(root)
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
    insights = report_insights(root)
    # Every report mart is a summary (at most 1,000 Pareto points), never the purchases. A
    # question whose stage was skipped has no marts to read.
    ran = {outputs.OUTPUTS[outputs.insights(key)].stage for key in answered(insights)}
    marts = {
        name: read(spark, root, f"marts/{name}").toPandas()
        for name in MARTS
        if outputs.OUTPUTS[f"marts/{name}"].stage in ran
    }
    report = build_report(insights, marts)
    folder = report_folder()
    for name, png in report.charts.items():
        filesystem.write_bytes(filesystem.join(folder, f"{name}.png"), png)
    filesystem.write_bytes(filesystem.join(folder, PAGE), report.html.encode("utf-8"))
    published_page = filesystem.shown(
        filesystem.join(filesystem.qualified(out), runs.REPORT_FOLDER, PAGE)
    )
    if filesystem.qualified(out) != filesystem.qualified(root):
        for section in SECTIONS:
            publish_insights(config, section, insights[section])
    record_in_manifest(
        config,
        "report",
        {
            "input": root,
            "report": published_page,
            "charts": sorted(report.charts),
            "timings": {"total_s": round(time.time() - started, 2)},
        },
    )
    log.info("report written in %.1f s", time.time() - started)
    print(f"report: {published_page}")
    return {"report": published_page, "charts": sorted(report.charts)}


STAGE = Stage(
    "report",
    reads=(*(f"marts/{name}" for name in MARTS), *(outputs.insights(s) for s in SECTIONS)),
    run=run,
    runs_after_skips=True,
)
