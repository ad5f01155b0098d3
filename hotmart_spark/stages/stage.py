"""What a stage is, and the one way stages write and read the run's outputs."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from hotmart_spark import outputs, records, runs, tables
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import join


@dataclass(frozen=True)
class Stage:
    """A step of the analysis: it starts once the outputs it reads are written."""

    name: str
    # Outputs of other stages it reads (names of outputs.OUTPUTS); the raw input is not one.
    reads: tuple[str, ...]
    run: Callable[[SparkSession, Config], dict[str, Any]]
    # Starts also when a stage it reads from was skipped for too little data (and reads only
    # what the others wrote); otherwise it is skipped too.
    runs_after_skips: bool = False

    @property
    def writes(self) -> tuple[str, ...]:
        return outputs.written_by(self.name)


# The outputs written so far in the current stage, with their rows, when the caller (the
# pipeline's scheduler) records them; Pool tasks see their submitter's.
_WRITTEN: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "written_outputs", default=None
)


@contextlib.contextmanager
def recording_writes() -> Iterator[dict[str, int]]:
    """The tables `write` completes during the block, in this thread and in the pool tasks it
    submits: output name -> rows written."""
    written: dict[str, int] = {}
    token = _WRITTEN.set(written)
    try:
        yield written
    finally:
        _WRITTEN.reset(token)


def output_root(config: Config) -> str:
    return config.paths.output.rstrip("/")


def write(df: DataFrame, config: Config, name: str, months: tuple[str, str] | None = None) -> int:
    """Write the output table `name` of the run, as the outputs contract says it is stored;
    returns the rows written. It is staged, and replaces the published table when the run
    succeeds. With months (YYYY-MM, inclusive, "" for open), only those months' partitions
    and the undated one are replaced; the table's other months are kept."""
    output = outputs.OUTPUTS[name]
    run = runs.current()
    path = run.staged_path(name)
    if months is not None:
        tables.stage_other_partitions(join(run.root, name), path, months)
    written = tables.write_table(
        df, path, output.partitioned_by, months is not None, output.one_file
    )
    recorded = _WRITTEN.get()
    if recorded is not None:
        recorded[name] = written.rows
    return written.rows


def read(spark: SparkSession, root: str, name: str) -> DataFrame:
    """The output table `name` under an output root (the run's own version of it when the
    run wrote one there), complete, or one line naming the job that writes it."""
    output = outputs.OUTPUTS[name]
    path = runs.resolve(root, name)
    return tables.read_table(spark, path, root, name, output.stage, output.columns)


def report_folder() -> str:
    """The run's report folder, where the page, its charts and insights.json are written."""
    return runs.current().staged_path(runs.REPORT_FOLDER, keep_published=True)


def read_insights(root: str) -> dict[str, Any]:
    """insights.json under an output root, as the run sees it; empty when none is written."""
    return records.read_insights(runs.resolve(root, runs.REPORT_FOLDER))


def publish_insights(config: Config, section: str, numbers: Mapping[str, Any]) -> None:
    records.update_insights(report_folder(), section, numbers)


def record_in_manifest(config: Config, stage: str, record: Mapping[str, Any]) -> str:
    return str(runs.current().record_stage(stage, dict(record)))


def quality_gate_failed(message: str) -> None:
    """The run's data failed a quality gate: the run still publishes, then its job exits with
    its own code and this line."""
    runs.current().gate_failures.append(message)


def period(config: Config) -> tuple[dt.date, dt.date]:
    """The analysed period; where it is "auto", as validation resolved it for the input."""
    start, end = config.period.start, config.period.end
    if start is not None and end is not None:
        return start, end
    run = read_insights(config.paths.input).get("run", {})
    if "period_start" not in run:
        raise UserError(
            f"period is 'auto' and no validation under {config.paths.input} resolved it: "
            "run the validate job first"
        )
    return (
        start or dt.date.fromisoformat(run["period_start"]),
        end or dt.date.fromisoformat(run["period_end"]),
    )
