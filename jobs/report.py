"""The storytelling report: report/report.html (self-contained), its charts as PNG, insights.json."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import io
from hotmart_spark.cli import run_job
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.report.page import MARTS, SECTIONS, build_report

log = logging.getLogger("hotmart_spark.report")


def read_insights(root: str) -> dict[str, Any]:
    """insights.json of an earlier run, with every section the report needs."""
    path = io.local_path(root) / "report" / "insights.json"
    if not path.is_file():
        raise UserError(f"no report/insights.json under {root}: run the analysis jobs first")
    insights = json.loads(path.read_text(encoding="utf-8"))
    missing = [f"{name} (jobs/{job}.py)" for name, job in SECTIONS.items() if name not in insights]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}: run those jobs first")
    return insights


def main(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    root, out = config.paths.input, config.paths.output.rstrip("/")
    insights = read_insights(root)
    # Every report mart is a summary (at most 1,000 Pareto points), never the purchases.
    marts = {
        name: io.read_mart(spark, root, name, stage).toPandas() for name, stage in MARTS.items()
    }
    report = build_report(insights, marts)
    folder = io.local_path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in report.charts.items():
        io.write_atomically(folder / f"{name}.png", png)
    page = folder / "report.html"
    io.write_atomically(page, report.html.encode("utf-8"))
    if io.local_path(out).resolve() != io.local_path(root).resolve():
        for section in SECTIONS:
            io.update_insights(out, section, insights[section])
    io.update_manifest(
        out,
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


if __name__ == "__main__":
    sys.exit(run_job("report", main))
