"""The command line every job shares: --config, --input, --output, --set; one-line errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

from hotmart_spark.config import Config, load_config
from hotmart_spark.errors import UserError
from hotmart_spark.session import build_session

log = logging.getLogger("hotmart_spark")

EXIT_FAILURE = 1
EXIT_USER_ERROR = 2
DEBUG_ENV = "HOTMART_SPARK_DEBUG"


def job_config(argv: Sequence[str] | None, description: str) -> Config:
    """Parse a job's arguments into its config; --input/--output are paths.input/paths.output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="TOML config file (default: conf/default.toml)")
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
        help="override a config key (repeatable)",
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
    return load_config(args.config, overrides)


def run_job(
    name: str,
    main: Callable[[SparkSession, Config], object],
    argv: Sequence[str] | None = None,
    preload: Sequence[str] = (),
) -> int:
    """Run a job's main with a session; user errors end in one line and exit code 2.

    The `preload` modules are imported while the session starts: the JVM's start is mostly
    waiting for the Python side, which would otherwise import them first (about 2.5 s of
    statsmodels, scikit-learn and matplotlib for the pipeline)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # py4j logs its connection closing after the job's last line, which must be the error.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    try:
        config = job_config(argv, description=f"hotmart-spark {name} job")
        with ThreadPoolExecutor(1, "preload") as pool:
            imported = pool.submit(lambda: [importlib.import_module(m) for m in preload])
            spark = build_session(f"hotmart-spark-{name}")
            imported.result()
        try:
            main(spark, config)
        finally:
            spark.stop()
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
    return 0
