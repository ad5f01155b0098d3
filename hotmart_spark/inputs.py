"""Raw purchase exports (CSV, TSV, Parquet) resolved and read with the explicit schema."""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DataType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from hotmart_spark import schema
from hotmart_spark.config import separator_char
from hotmart_spark.errors import UserError
from hotmart_spark.filesystem import is_local, local_path

log = logging.getLogger(__name__)

PARQUET_MAGIC = b"PAR1"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
# pandas writes its index as a first column named "" (Spark calls it _c0) or "Unnamed: 0".
INDEX_COLUMNS = ("_c0", "Unnamed: 0", "index")
CORRUPT = "_corrupt_record"
INTEGRAL_TYPES = ("tinyint", "smallint", "int", "bigint")
# A decimal comma in a number that is otherwise plain ("1,0" -> "1.0").
DECIMAL_COMMA = r"^\s*(-?\d+),(\d+)\s*$"


@dataclass(frozen=True)
class InputFiles:
    """What a raw input path holds once resolved: its format, separator and files (when local)."""

    path: str
    format: str
    separator: str
    files: tuple[str, ...]

    @property
    def locations(self) -> list[str]:
        """What Spark reads: the files found (without the foreign ones left out), else the path."""
        return list(self.files) if self.files else [self.path]

    def describe(self) -> dict[str, object]:
        """What the manifest records about the input."""
        return {
            "path": self.path,
            "format": self.format,
            "separator": self.separator,
            "files": len(self.files),
            "bytes": sum(os.path.getsize(f) for f in self.files),
        }


def resolve_input(
    path: str,
    fmt: str = "auto",
    separator: str = "auto",
    encoding: str = "UTF-8",
    skip_foreign_files: bool = False,
) -> InputFiles:
    """Check the input exists and decide its format and separator (sniffed for local files).

    In a local folder, every file must be a purchase export: a text file whose first line is
    the purchase header, or a Parquet file in a Parquet folder. Any other file is refused
    with one line naming it, or left out with a warning when skip_foreign_files is set."""
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
            kinds = sorted(set(found.values()))
            if len(kinds) > 1 and not skip_foreign_files:
                raise UserError(
                    f"input mixes Parquet and text files: {path}; give one format per run"
                )
            # With foreign files skipped, the format of most files is the input's.
            fmt = max(kinds, key=list(found.values()).count)
        wrong = [f for f, kind in found.items() if kind != fmt]
        if wrong and not skip_foreign_files:
            what = "is a Parquet file, not CSV" if fmt == "csv" else "is not a Parquet file"
            raise UserError(f"{wrong[0]} {what} (input.format = {fmt})")
        files = tuple(f for f in files if f in found and f not in wrong)
        for skipped in wrong:
            log.warning("skipping %s: not a %s file (input.skip_foreign_files)", skipped, fmt)
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
    separator = separator_char(separator)
    if fmt == "csv" and len(files) > 1:
        foreign = [f for f in files if not _has_purchase_header(f, separator, encoding)]
        if foreign and not skip_foreign_files:
            raise UserError(
                f"{foreign[0]} is not a purchase export (its first line is not the purchase "
                f"header): move it out of {path}, or set input.skip_foreign_files = true"
            )
        for skipped in foreign:
            log.warning("skipping %s: its first line is not the purchase header", skipped)
        files = tuple(f for f in files if f not in foreign)
        if not files:
            raise UserError(f"input folder holds no purchase export: {path}")
    return InputFiles(path=path, format=fmt, separator=separator, files=files)


def _has_purchase_header(file: str, separator: str, encoding: str) -> bool:
    """Whether the file's first line names every required column."""
    opener = gzip.open if file.endswith(".gz") else open
    try:
        with opener(file, "rt", encoding=encoding, errors="replace", newline="") as handle:
            first = handle.readline()
    except (OSError, EOFError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from None
    return not missing_columns([header_name(name) for name in first.split(separator)])


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
            raw = spark.read.parquet(*source.locations)
            check_columns(path, raw.columns)
            raw = raw.withColumn(CORRUPT, F.lit(None).cast(StringType()))
    except AnalysisException as exc:
        if exc.getCondition() == "PATH_NOT_FOUND":
            raise UserError(f"input not found: {path}") from None
        raise UserError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    purchases = typed(raw, source.separator, F.col("_metadata.file_path"))
    if source.format == "csv" and source.separator.isspace():
        purchases = purchases.unionByName(_whitespace_rows(spark, source))
    return purchases


def _whitespace_rows(spark: SparkSession, source: InputFiles) -> DataFrame:
    """The lines of only separators and blanks, as rows of nulls (required_null for
    validation). Spark's CSV reader skips a line that is blank once trimmed, and with a
    whitespace separator such a line is a row of empty fields, not a blank line. Costs one
    more pass over the input, for whitespace-separated (TSV) inputs only."""
    # The separator is whitespace, which a regular expression takes literally.
    blanks = f"[ \\r{source.separator}]*"
    only_separators = f"^{blanks}{source.separator}{blanks}$"
    lines = spark.read.text(source.locations)
    return lines.where(F.col("value").rlike(only_separators)).select(
        *[F.lit(None).cast(kind).alias(name) for name, kind in schema.PURCHASE_FIELDS],
        F.col("_metadata.file_path").alias(schema.SOURCE_FILE),
        F.lit(None).cast(StringType()).alias(schema.RAW_LINE),
    )


def _read_csv(spark: SparkSession, source: InputFiles, encoding: str) -> DataFrame:
    reader = spark.read.option("header", True).option("sep", source.separator)
    reader = reader.option("encoding", encoding)
    header = [header_name(c) for c in reader.csv(source.locations).columns]
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
        .csv(source.locations)
    )


def header_name(field: str) -> str:
    """A header field as a column name: without a byte-order mark, blanks or quotes."""
    return field.lstrip("\ufeff").strip().strip('"').strip()


def missing_columns(columns: list[str]) -> list[str]:
    return [c for c in schema.REQUIRED_COLUMNS if c not in columns]


def check_columns(path: str, columns: list[str]) -> None:
    missing = missing_columns(columns)
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
