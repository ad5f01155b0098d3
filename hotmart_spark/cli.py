"""The command line every job shares: --config, --input, --output, --set; one-line errors.

Every job is `python -m hotmart_spark <job> [options]` (what an installed wheel needs) or
`spark-submit jobs/<job>.py [options]` (Spark's own form); both end in run_job."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hotmart_spark import outputs, progress, runs
from hotmart_spark.config import Config, render_config, resolve_config
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import is_local, local_path
from hotmart_spark.session import build_session
from hotmart_spark.threads import Pool

log = logging.getLogger("hotmart_spark")

EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
# The run succeeded and published its outputs, but its data failed a quality gate (3 is
# the JVM's own exit on running out of memory).
EXIT_QUALITY_GATE = 5
# Another run holds the output root: try again later.
EXIT_OUTPUT_ROOT_BUSY = 4
DEBUG_ENV = "HOTMART_SPARK_DEBUG"
CDS_DONE_ENV = "HOTMART_SPARK_CDS_DONE"
# Each job's module (whose run(spark, config) it calls) and what it does.
JOBS: dict[str, tuple[str, str]] = {
    "generate": (
        "hotmart_spark.stages.generate",
        "write synthetic purchases shaped like the sample",
    ),
    "validate": ("hotmart_spark.stages.validate", "raw input to clean/ and quarantine/"),
    "aggregates": ("hotmart_spark.stages.aggregates", "producer dependence and trends (Q1, Q2)"),
    "segments": ("hotmart_spark.stages.segments", "buyer RFM segments, producer clusters (Q3)"),
    "drivers": ("hotmart_spark.stages.drivers", "what makes a product sell (Q4)"),
    "forecast": ("hotmart_spark.stages.forecast", "the next three months' revenue (Q5)"),
    "report": ("hotmart_spark.stages.report", "the HTML report and its charts"),
    "pipeline": ("hotmart_spark.pipeline", "validate to report in one Spark session"),
    "load_mysql": ("hotmart_spark.stages.load_mysql", "load an export into a MySQL table"),
}
# Jobs that write somewhere else than an output root (raw files, a database).
NOT_ON_AN_OUTPUT_ROOT = ("generate", "load_mysql")


def job_config(argv: Sequence[str] | None, description: str) -> Config:
    """Parse a job's arguments into its config; --input/--output are paths.input/paths.output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config", help="TOML file of the settings to change; the package's defaults fill the rest"
    )
    parser.add_argument("--input", help="raw file or folder; for later stages an output root")
    parser.add_argument("--output", help="output root of the run")
    parser.add_argument(
        "--from",
        dest="from_month",
        metavar="YYYY-MM",
        help="first month to validate; with --to, a re-run replaces just these months",
    )
    parser.add_argument("--to", dest="to_month", metavar="YYYY-MM", help="last month to validate")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key (repeatable); wins over the file and the environment",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config, each key with where its value came from, and exit",
    )
    args = parser.parse_args(argv)
    overrides = list(args.set)
    if args.input:
        overrides.append(f"paths.input={args.input}")
    if args.output:
        overrides.append(f"paths.output={args.output}")
    if args.from_month:
        overrides.append(f"input.from_month={args.from_month}")
    if args.to_month:
        overrides.append(f"input.to_month={args.to_month}")
    config, sources = resolve_config(args.config, overrides, os.environ)
    if args.print_config:
        print(render_config(config, sources), end="")
        raise SystemExit(0)
    out = config.paths.output
    if is_local(out) and local_path(out).is_file():
        raise UserError(f"--output {out} is a file: name a folder for the run's outputs")
    return config


def written_by_job(name: str) -> tuple[str, ...]:
    """The paths under the output root a job writes: its tables (the pipeline's: every one)
    and the report folder (every job on a root writes insights.json or the report)."""
    tables = [
        o.name
        for o in outputs.OUTPUTS.values()
        if o.is_table and (name == "pipeline" or o.stage == name)
    ]
    return (*tables, runs.REPORT_FOLDER)


def run_job(name: str, argv: Sequence[str] | None = None) -> int:
    """Run a job with a session; user errors end in one line and exit code 2.

    The job's module is imported while the session starts: the JVM's start is mostly
    waiting for the Python side, which would otherwise import it first (about 2.5 s of
    statsmodels, scikit-learn and matplotlib for the pipeline)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # py4j logs its connection closing after the job's last line, which must be the error.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    module, description = JOBS[name]
    try:
        config = job_config(argv, description=f"hotmart-spark {name}: {description}")
        with Pool(1, "preload") as pool:
            imported = pool.submit(importlib.import_module, module)
            spark = build_session(f"hotmart-spark-{name}")
            job = imported.result()
        try:
            with contextlib.ExitStack() as held:
                # A job on an output root runs as a run of it; the others write elsewhere.
                run = None
                if name not in NOT_ON_AN_OUTPUT_ROOT:
                    run = held.enter_context(
                        runs.output_run(
                            config.paths.output,
                            name,
                            spark.sparkContext.applicationId,
                            {"input": config.paths.input, "output": config.paths.output},
                            writes=written_by_job(name),
                        )
                    )
                with progress.reporting(spark, name, groups=list(JOBS)):
                    job.run(spark, config)
        finally:
            spark.stop()
        if run is not None and run.gate_failures:
            print(f"error: {'; '.join(run.gate_failures)}", file=sys.stderr)
            return EXIT_QUALITY_GATE
    except runs.OutputRootBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT_ROOT_BUSY
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        print(
            f"error: {name} failed: {type(exc).__name__}: {first_line} "
            f"(set {DEBUG_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    mark_finished()
    return 0


def mark_finished() -> None:
    """Leaves the file spark-submit.sh names, if any: the run started Spark and finished,
    so the class archive its JVM writes at exit holds the classes a whole run loads."""
    done = os.environ.get(CDS_DONE_ENV)
    if done:
        Path(done).touch()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hotmart_spark <job> [options]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in JOBS:
        jobs = "\n".join(f"  {name:<11} {what}" for name, (_, what) in JOBS.items())
        asked = args[:1] in (["-h"], ["--help"])
        given = f"unknown job '{args[0]}'; " if args and not asked else ""
        print(
            f"usage: python -m hotmart_spark <job> [--help | options]\n{given}jobs:\n{jobs}",
            file=sys.stdout if asked else sys.stderr,
        )
        return 0 if asked else EXIT_USER_ERROR
    # Local executors then run the interpreter of the installation the job came from
    # (spark-submit.sh sets its own).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return run_job(args[0], args[1:])
