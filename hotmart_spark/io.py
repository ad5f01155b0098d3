"""Read raw purchase exports with the explicit schema; write tables and the run manifest."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import platform
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pyspark
from pyspark import StorageLevel, inheritable_thread_target
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

import hotmart_spark
from hotmart_spark import schema
from hotmart_spark.config import separator_char
from hotmart_spark.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")

PARQUET_MAGIC = b"PAR1"
SUCCESS_MARKER = "_SUCCESS"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
# pandas writes its index as a first column named "" (Spark calls it _c0) or "Unnamed: 0".
INDEX_COLUMNS = ("_c0", "Unnamed: 0", "index")
CORRUPT = "_corrupt_record"
INTEGRAL_TYPES = ("tinyint", "smallint", "int", "bigint")
# A decimal comma in a number that is otherwise plain ("1,0" -> "1.0").
DECIMAL_COMMA = r"^\s*(-?\d+),(\d+)\s*$"
# The tables completed in the current stage and the rows each write wrote, when a caller
# records them (see recording_writes).
_WRITTEN: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "written_tables", default=None
)
# Stages running at the same time update the same manifest and insights files.
_JSON_LOCK = threading.Lock()


@dataclass(frozen=True)
class InputFiles:
    """What a raw input path holds once resolved: its format, separator and files (when local)."""

    path: str
    format: str
    separator: str
    files: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        """What the manifest records about the input."""
        return {
            "path": self.path,
            "format": self.format,
            "separator": self.separator,
            "files": len(self.files),
            "bytes": sum(os.path.getsize(f) for f in self.files),
        }


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def resolve_input(path: str, fmt: str = "auto", separator: str = "auto") -> InputFiles:
    """Check the input exists and decide its format and separator (sniffed for local files)."""
    files: tuple[str, ...] = ()
    if is_local(path):
        root = local_path(path)
        if not root.exists():
            raise UserError(f"input not found: {path}")
        if root.is_dir():
            files = tuple(
                str(p)
                for p in sorted(root.rglob("*"))
                if p.is_file()
                and not any(part.startswith((".", "_")) for part in p.relative_to(root).parts)
            )
            if not files:
                raise UserError(f"input folder holds no data files: {path}")
        else:
            files = (str(root),)
        found = {f: _sniff_format(f) for f in files if os.path.getsize(f) > 0}
        if not found:
            raise UserError(f"input is empty: {path}")
        if fmt == "auto":
            if len(set(found.values())) > 1:
                raise UserError(
                    f"input mixes Parquet and text files: {path}; give one format per run"
                )
            fmt = next(iter(found.values()))
        wrong = [f for f, kind in found.items() if kind != fmt]
        if wrong:
            what = "is a Parquet file, not CSV" if fmt == "csv" else "is not a Parquet file"
            raise UserError(f"{wrong[0]} {what} (input.format = {fmt})")
    elif fmt == "auto":
        suffix = Path(urlparse(path).path).suffix.lower()
        if suffix == ".parquet":
            fmt = "parquet"
        elif suffix in CSV_SUFFIXES:
            fmt = "csv"
        else:
            raise UserError(f"cannot tell the format of {path}; set input.format to csv or parquet")
    if separator == "auto":
        names = files or (path,)
        separator = "\t" if all(n.lower().endswith(".tsv") for n in names) else ","
    return InputFiles(path=path, format=fmt, separator=separator_char(separator), files=files)


def _sniff_format(file: str) -> str:
    try:
        with open(file, "rb") as handle:
            head = handle.read(4)
            if head == PARQUET_MAGIC:
                handle.seek(-4, os.SEEK_END)
                if handle.read(4) == PARQUET_MAGIC:
                    return "parquet"
    except OSError as exc:
        raise UserError(f"cannot read {file}: {exc.strerror}") from None
    return "csv"


def read_purchases(spark: SparkSession, source: InputFiles, encoding: str = "UTF-8") -> DataFrame:
    """Raw purchases typed as schema.PURCHASE_FIELDS plus source_file and raw_line.

    Nothing is dropped: a line that does not parse keeps its text in raw_line, which marks it
    malformed for validation.
    """
    path = source.path
    try:
        if source.format == "csv":
            raw = _read_csv(spark, source, encoding)
        else:
            raw = spark.read.parquet(path)
            check_columns(path, raw.columns)
            raw = raw.withColumn(CORRUPT, F.lit(None).cast(StringType()))
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            raise UserError(f"input not found: {path}") from None
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return typed(raw, source.separator, F.col("_metadata.file_path"))


def _read_csv(spark: SparkSession, source: InputFiles, encoding: str) -> DataFrame:
    reader = spark.read.option("header", True).option("sep", source.separator)
    reader = reader.option("encoding", encoding)
    header = [c.lstrip("\ufeff").strip() for c in reader.csv(source.path).columns]
    if not header:
        raise UserError(f"input is empty: {source.path}")
    check_columns(source.path, header)
    # Spark parses the typed fields itself and keeps any line that does not fit the schema
    # (a field missing, a number or timestamp that does not parse) whole in CORRUPT. The
    # social-network flag is read as text: the export writes it with a decimal comma.
    types = dict(schema.PURCHASE_FIELDS)
    csv_schema = StructType(
        [
            StructField(
                name, types[name] if name in types and name != schema.IS_SOCIAL else StringType()
            )
            for name in header
        ]
        + [StructField(CORRUPT, StringType())]
    )
    return (
        reader.schema(csv_schema)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .csv(source.path)
    )


def check_columns(path: str, columns: list[str]) -> None:
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{path}: missing required column(s): {', '.join(missing)}")
    known = set(schema.REQUIRED_COLUMNS) | set(schema.OPTIONAL_COLUMNS) | set(INDEX_COLUMNS)
    extra = [c for c in columns if c not in known]
    if extra:
        log.warning("%s: ignoring extra column(s): %s", path, ", ".join(extra))


def typed(raw: DataFrame, separator: str, source_file: Column) -> DataFrame:
    """Purchases typed as schema.PURCHASE_FIELDS, with source_file and raw_line (set where a
    value was there but did not parse, or the reader kept the line whole in CORRUPT)."""
    source_types = dict(raw.dtypes)
    columns = [c for c in raw.columns if c != CORRUPT]
    # Each field is parsed once and its source value kept beside it. Every column of the file
    # is kept, so Spark does not prune the ones nobody selects: a pruned column would hide a
    # line that is missing fields.
    parsed = raw.select(
        *[
            _parse(F.col(name), source_types[name], target).alias(name)
            for name, target in schema.PURCHASE_FIELDS
        ],
        *[F.col(f"`{c}`").alias(f"_source_{i}") for i, c in enumerate(columns)],
        F.col(CORRUPT),
        source_file.alias(schema.SOURCE_FILE),
    )
    source_of = {c: F.col(f"_source_{i}") for i, c in enumerate(columns)}
    # A value that was there but did not parse (text, or NaN in a number) makes the row malformed.
    failed = [
        source_of[name].isNotNull() & F.col(name).isNull()
        for name, _ in schema.PURCHASE_FIELDS
        if source_types[name] in ("string", "double", "float")
    ]
    text = [F.coalesce(source_of[c].cast(StringType()), F.lit("")) for c in columns]
    raw_line = F.when(F.col(CORRUPT).isNotNull(), F.col(CORRUPT))
    if failed:
        raw_line = raw_line.when(F.greatest(*failed, F.lit(False)), F.concat_ws(separator, *text))
    return parsed.select(
        *[name for name, _ in schema.PURCHASE_FIELDS],
        schema.SOURCE_FILE,
        raw_line.alias(schema.RAW_LINE),
    )


def _parse(col: Column, source_type: str, target: DataType) -> Column:
    """The column as `target`, or null where its value does not parse."""
    if source_type == "string":
        text = F.nullif(F.trim(col), F.lit(""))
        if isinstance(target, StringType):
            return text
        if isinstance(target, TimestampType):
            return F.try_to_timestamp(text)
        whole = text.try_cast(LongType())
        number = F.regexp_replace(text, DECIMAL_COMMA, "$1.$2").try_cast(DoubleType())
    else:
        if isinstance(target, StringType):
            return col.cast(StringType())
        if isinstance(target, TimestampType):
            return col.try_cast(TimestampType())
        whole = col.try_cast(LongType()) if source_type in INTEGRAL_TYPES else F.lit(None)
        number = col.try_cast(DoubleType())
    if isinstance(target, DoubleType):
        return F.when(~F.isnan(number), number)
    if isinstance(target, IntegerType):
        # The only integer field is the social-network flag: 0 or 1, nothing else.
        return F.when(number.isin(0.0, 1.0), number.cast(IntegerType()))
    if isinstance(target, LongType):
        # Ids exported through pandas floats arrive as "123.0"; plain integers skip the
        # double so that ids above 2**53 stay exact.
        return F.coalesce(whole, F.when(number == F.floor(number), number.try_cast(LongType())))
    raise TypeError(f"no parser for {target}")


def _read_output(
    spark: SparkSession,
    root: str,
    table: str,
    what: str,
    stage: str,
    columns: StructType | None = None,
) -> DataFrame:
    """The table at `table` under an earlier run's output root, or one line naming `what` is
    missing and the job (`stage`) that writes it."""
    path = f"{root.rstrip('/')}/{table}"
    reader = spark.read.schema(columns) if columns is not None else spark.read
    try:
        df = reader.parquet(path)
    except AnalysisException:
        raise UserError(
            f"no {what} under {root}: run jobs/{stage}.py first, or pass its output root as --input"
        ) from None
    if not _filesystem(spark, path).exists(_hadoop_path(spark, f"{path}/{SUCCESS_MARKER}")):
        raise UserError(
            f"{what} under {root} is incomplete (no {SUCCESS_MARKER}: a run stopped while "
            f"writing it): re-run jobs/{stage}.py"
        )
    return df


def read_clean(spark: SparkSession, root: str) -> DataFrame:
    """The clean purchases under an earlier run's output root."""
    return _read_output(spark, root, "clean", "clean table", "validate")


def read_quarantine(spark: SparkSession, root: str) -> DataFrame:
    """Date and reasons of the quarantined rows under an earlier run's output root."""
    # A run without quarantined rows leaves a folder with no data file, so the schema is given.
    columns = StructType(
        [
            StructField(schema.PURCHASE_DATE, TimestampType()),
            StructField(schema.REASONS, ArrayType(StringType())),
        ]
    )
    return _read_output(spark, root, "quarantine", "quarantine table", "validate", columns)


def read_mart(spark: SparkSession, root: str, name: str, stage: str) -> DataFrame:
    """One mart under an earlier run's output root; `stage` is the job that writes it."""
    return _read_output(spark, root, f"marts/{name}", f"marts/{name}", stage)


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


# Columns with about one value per row. Parquet's dictionary encoding pays where values
# repeat (products, producers, categories, devices); on these it hashes every value until the
# dictionary outgrows its page and then writes them plain all the same. Without it for these
# four, the clean table of 1.6M rows is written in 4.1-4.9 s instead of 5.1-8.3 s (warm
# session, interleaved), 65 MB instead of 68; README, Performance.
ROW_UNIQUE_COLUMNS = (
    schema.PURCHASE_ID,
    schema.BUYER_ID,
    schema.PURCHASE_DATE,
    schema.PURCHASE_VALUE,
)


def write_table(
    df: DataFrame, path: str, partition_by: str | None = None, only_partitions: bool = False
) -> None:
    """Replace the table at path with df (Parquet); with only_partitions, replace just the
    partitions df has rows for and keep the others.

    The table's _SUCCESS marker is removed before writing and set once the write is complete,
    so a run that dies midway leaves a table every reader refuses instead of half a table.
    """
    fs = _filesystem(df.sparkSession, path)
    marker = _hadoop_path(df.sparkSession, f"{path}/{SUCCESS_MARKER}")
    fs.delete(marker, False)
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
    fs.create(marker, True).close()
    written = _WRITTEN.get()
    if written is not None:
        written[path] = rows.get["rows"]


@contextlib.contextmanager
def _recording_into(written: dict[str, int] | None) -> Iterator[None]:
    token = _WRITTEN.set(written)
    try:
        yield
    finally:
        _WRITTEN.reset(token)


@contextlib.contextmanager
def recording_writes() -> Iterator[dict[str, int]]:
    """The tables write_table completes in this thread during the block: path -> rows written
    (with only_partitions, the rows of the partitions replaced)."""
    written: dict[str, int] = {}
    with _recording_into(written):
        yield written


def in_callers_context(spark: SparkSession, fn: Callable[..., T]) -> Callable[..., T]:
    """fn for another thread, run as if by this one: its table writes are recorded where this
    thread records them, and its Spark jobs carry this thread's local properties, among them
    the pipeline stage's job group that Spark's UI and event log show."""
    written = _WRITTEN.get()

    def run(*args: Any, **kwargs: Any) -> T:
        with _recording_into(written):
            return fn(*args, **kwargs)

    return inheritable_thread_target(spark)(run)


def _hadoop_path(spark: SparkSession, path: str) -> Any:
    return spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)


def _filesystem(spark: SparkSession, path: str) -> Any:
    """The Hadoop FileSystem holding path (local, HDFS, S3...), as Spark itself sees it."""
    return _hadoop_path(spark, path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def versions() -> dict[str, str]:
    return {
        "hotmart_spark": hotmart_spark.__version__,
        "pyspark": pyspark.__version__,
        "python": platform.python_version(),
    }


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the file at path so that a reader sees the old or the new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def merge_json(
    path: Path, keys: tuple[str, ...], value: Any, extra: Mapping[str, Any] | None = None
) -> Path:
    """Set the entry at the key path (and top-level `extra` keys) in the JSON object at path,
    keeping everything else, and write it atomically."""
    # Read, change and write under one lock: a stage's update must not undo another's.
    with _JSON_LOCK:
        document: dict[str, Any] = {}
        if path.exists():
            document = json.loads(path.read_text(encoding="utf-8"))
        node = document
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        document.update(extra or {})
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
        write_atomically(path, text.encode("utf-8"))
    return path


def _local_root(output_root: str) -> Path:
    if not is_local(output_root):
        raise UserError(f"manifest and insights need a local output root, got {output_root}")
    return local_path(output_root)


def update_manifest(output_root: str, stage: str, record: Mapping[str, Any]) -> Path:
    """Record one stage's inputs, counts, parameters and timings in manifest.json."""
    return merge_json(
        _local_root(output_root) / "manifest.json",
        ("stages", stage),
        dict(record),
        {
            "versions": versions(),
            "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def update_insights(output_root: str, section: str, numbers: Mapping[str, Any]) -> Path:
    """Set one section of report/insights.json, the report's headline numbers."""
    return merge_json(
        _local_root(output_root) / "report" / "insights.json", (section,), dict(numbers)
    )


def write_small_table(df: DataFrame, path: str) -> None:
    """Replace a summary table whose size does not grow with purchases, as one file."""
    # One file instead of one per shuffle partition; the table is small by construction.
    write_table(df.coalesce(1), path)
