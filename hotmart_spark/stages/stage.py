"""What a stage is, and the one way stages write and read the run's outputs."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from hotmart_spark import outputs, records, tables
from hotmart_spark.config import Config


@dataclass(frozen=True)
class Stage:
    """A step of the analysis: it starts once the outputs it reads are written."""

    name: str
    # Outputs of other stages it reads (names of outputs.OUTPUTS); the raw input is not one.
    reads: tuple[str, ...]
    run: Callable[[SparkSession, Config], dict[str, Any]]

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


def write(df: DataFrame, config: Config, name: str, only_partitions: bool = False) -> int:
    """Replace the output table `name` under the run's output root, as the outputs contract
    says it is stored; returns the rows written."""
    output = outputs.OUTPUTS[name]
    written = tables.write_table(
        df, f"{output_root(config)}/{name}", output.partitioned_by, only_partitions, output.one_file
    )
    recorded = _WRITTEN.get()
    if recorded is not None:
        recorded[name] = written.rows
    return written.rows


def read(spark: SparkSession, root: str, name: str) -> DataFrame:
    """The output table `name` under an output root, complete, or one line naming the job
    that writes it."""
    output = outputs.OUTPUTS[name]
    return tables.read_table(spark, root, name, output.stage, output.columns)


def publish_insights(config: Config, section: str, numbers: Mapping[str, Any]) -> None:
    records.update_insights(output_root(config), section, numbers)


def record_in_manifest(config: Config, stage: str, record: Mapping[str, Any]) -> str:
    return str(records.update_manifest(output_root(config), stage, record))
