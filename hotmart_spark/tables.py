"""Parquet tables under an output root: written whole or by partition, each marked complete
by its own _SUCCESS, and read back only when complete."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from hotmart_spark import filesystem, schema
from hotmart_spark.errors import UserError

SUCCESS_MARKER = "_SUCCESS"
# The partition Spark writes rows with a null partition value to.
UNDATED = "__HIVE_DEFAULT_PARTITION__"

# Columns with about one value per row. Parquet's dictionary encoding pays where values
# repeat (products, producers, categories, devices); on these it hashes every value until the
# dictionary outgrows its page and then writes them plain all the same. Without it for these
# four, the clean table of 1.6M rows is written in 4.1-4.9 s instead of 5.1-8.3 s (warm
# session, interleaved), 65 MB instead of 68; bench/HISTORY.md.
ROW_UNIQUE_COLUMNS = (
    schema.PURCHASE_ID,
    schema.BUYER_ID,
    schema.PURCHASE_DATE,
    schema.PURCHASE_VALUE,
)


@dataclass(frozen=True)
class Written:
    """What one write wrote: the table's path and its rows (with only_partitions, the rows of
    the partitions replaced)."""

    path: str
    rows: int


def write_table(
    df: DataFrame,
    path: str,
    partition_by: str | None = None,
    only_partitions: bool = False,
    one_file: bool = False,
) -> Written:
    """Replace the table at path with df (Parquet); with only_partitions, replace just the
    partitions df has rows for and keep the others; with one_file, as a single file (for
    summaries whose size does not grow with purchases).

    The table's _SUCCESS marker is removed before writing and set once the write is complete,
    so a run that dies midway leaves a table every reader refuses instead of half a table.
    """
    marker = filesystem.join(path, SUCCESS_MARKER)
    filesystem.delete(marker)
    if one_file:
        df = df.coalesce(1)
    mode = "dynamic" if only_partitions else "static"
    # Counted while writing: reading the table back for its count is a Spark job per table.
    rows = Observation()
    df = df.observe(rows, F.count(F.lit(1)).alias("rows"))
    writer = df.write.mode("overwrite").option("partitionOverwriteMode", mode)
    for column in ROW_UNIQUE_COLUMNS:
        writer = writer.option(f"parquet.enable.dictionary#{column}", "false")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(path)
    # A dynamic partition overwrite commits without writing the marker at the table root.
    filesystem.write_bytes(marker, b"")
    return Written(path, rows.get["rows"])


def read_table(
    spark: SparkSession,
    path: str,
    root: str,
    table: str,
    written_by: str,
    columns: StructType | None = None,
) -> DataFrame:
    """The table at path (`table` under an output root), or one line saying it is missing
    or incomplete and which job (`written_by`) writes it."""
    reader = spark.read.schema(columns) if columns is not None else spark.read
    try:
        df = reader.parquet(path)
    except AnalysisException:
        raise UserError(
            f"no {table} table under {root}: run the {written_by} job first, "
            "or pass its output root as --input"
        ) from None
    if not filesystem.exists(filesystem.join(path, SUCCESS_MARKER)):
        raise UserError(
            f"the {table} table under {root} is incomplete (no {SUCCESS_MARKER}): re-run the "
            f"{written_by} job"
        )
    return df


def stage_other_partitions(published: str, staged: str, months: tuple[str, str]) -> None:
    """Copy into `staged` the partitions of the published table a month-range run keeps: the
    months outside [months] (YYYY-MM, inclusive, "" for open). The range's months and the
    undated partition are left out, so the run's rows replace them whole, also where it has
    none. (On a local disk the copy is hard links: no bytes move and no Spark job runs.)"""
    first, last = months
    filesystem.mkdirs(staged)
    for name in filesystem.children(published):
        column, _, value = name.partition("=")
        partition = filesystem.join(published, name)
        if column != schema.PURCHASE_MONTH or value == UNDATED or not filesystem.is_dir(partition):
            continue
        if (first and value < first) or (last and value > last):
            filesystem.copy_tree(partition, filesystem.join(staged, name))


@contextlib.contextmanager
def persisted(df: DataFrame, level: StorageLevel | None = None) -> Iterator[DataFrame]:
    """df kept for the block and released after it, also when the block fails.

    Without a level, the session's spark.sql.defaultCacheStorageLevel applies (the properties
    files: serialized in memory, spilling to disk), so a run on far more rows than the driver's
    memory can keep its tables on disk with one --conf and no code change.
    """
    if level is None:
        df.cache()
    else:
        df.persist(level)
    try:
        yield df
    finally:
        df.unpersist()
