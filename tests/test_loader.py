from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from hotmart_spark import inputs, tables
from hotmart_spark import schema as s
from hotmart_spark.errors import UserError
from tests.conftest import HEADER

GOOD_LINE = (
    "1,10,7,7,101,2016-01-10 12:00:01,2015-06-01 00:00:00,Podcast,Physics,"
    '-0.2,0.0,Desktop,Origin 00ab,"1,0",1'
)
AFFILIATE_LINE = (
    "2,11,8,9,102,2016-02-01 08:30:00,2015-06-01 00:00:00,Phisical book,Negotiation,"
    '1.5,40.0,eReaders,Origin 0f00,"0,0",1'
)


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_text(text, encoding=encoding)
    return str(path)


def expected(spark: SparkSession, source: str):
    rows = [
        (1, 10, 7, 7, 101, dt.datetime(2016, 1, 10, 12, 0, 1), dt.datetime(2015, 6, 1),
         "Podcast", "Physics", -0.2, 0.0, "Desktop", "Origin 00ab", 1, source, None),
        (2, 11, 8, 9, 102, dt.datetime(2016, 2, 1, 8, 30), dt.datetime(2015, 6, 1),
         "Phisical book", "Negotiation", 1.5, 40.0, "eReaders", "Origin 0f00", 0, source, None),
    ]  # fmt: skip
    return spark.createDataFrame(rows, s.LOADED_SCHEMA)


def test_reads_the_real_export_style(spark: SparkSession, tmp_path: Path) -> None:
    path = write(tmp_path / "sales.csv", f"{HEADER}\n{GOOD_LINE}\n{AFFILIATE_LINE}\n")
    df = inputs.read_purchases(spark, inputs.resolve_input(path))
    assert [(f.name, f.dataType) for f in df.schema] == [
        (f.name, f.dataType) for f in s.LOADED_SCHEMA
    ]
    assert_df_equality(
        df, expected(spark, f"file:{path}"), ignore_row_order=True, ignore_nullable=True
    )


def test_pandas_index_blank_first_row_and_no_venda(spark: SparkSession, tmp_path: Path) -> None:
    header = "," + HEADER.removesuffix(",Venda")
    blank = "," * header.count(",")
    lines = [GOOD_LINE.removesuffix(",1"), AFFILIATE_LINE.removesuffix(",1")]
    text = f"{header}\n{blank}\n0,{lines[0]}\n1,{lines[1]}\n"
    path = write(tmp_path / "pandas.csv", text)
    df = inputs.read_purchases(spark, inputs.resolve_input(path))
    # The blank row is kept (validation quarantines it); the two purchases read as usual.
    assert df.count() == 3
    purchases = df.where("purchase_id is not null")
    assert_df_equality(
        purchases, expected(spark, f"file:{path}"), ignore_row_order=True, ignore_nullable=True
    )
    blank_row = df.where("purchase_id is null").first()
    assert all(blank_row[c] is None for c in s.REQUIRED_COLUMNS)


@pytest.mark.parametrize("encoding", ["UTF-8", "ISO-8859-1"])
def test_encodings(spark: SparkSession, tmp_path: Path, encoding: str) -> None:
    line = GOOD_LINE.replace("Physics", "Negociação")
    path = write(tmp_path / "latin.csv", f"{HEADER}\n{line}\n", encoding=encoding)
    row = inputs.read_purchases(spark, inputs.resolve_input(path), encoding=encoding).first()
    assert row[s.PRODUCT_NICHE] == "Negociação"


def test_tsv_separator_is_sniffed_from_the_name(spark: SparkSession, tmp_path: Path) -> None:
    tsv_header = HEADER.replace(",", "\t")
    tsv_line = GOOD_LINE.replace('"1,0"', "1,0").replace(",", "\t").replace("1\t0", "1,0")
    path = write(tmp_path / "sales.tsv", f"{tsv_header}\n{tsv_line}\n")
    row = inputs.read_purchases(spark, inputs.resolve_input(path)).first()
    assert (row[s.PURCHASE_ID], row[s.IS_SOCIAL], row[s.PURCHASE_ORIGIN]) == (1, 1, "Origin 00ab")


def test_a_tab_written_as_backslash_t_is_a_tab(tmp_path: Path) -> None:
    path = write(tmp_path / "sales.txt", f"{HEADER}\n")
    assert inputs.resolve_input(path, separator="\\t").separator == "\t"


def test_parquet_and_folders(spark: SparkSession, tmp_path: Path) -> None:
    csv = write(tmp_path / "sales.csv", f"{HEADER}\n{GOOD_LINE}\n{AFFILIATE_LINE}\n")
    folder = str(tmp_path / "parquet")
    inputs.read_purchases(spark, inputs.resolve_input(csv)).drop(
        s.SOURCE_FILE, s.RAW_LINE
    ).write.parquet(folder)
    df = inputs.read_purchases(spark, inputs.resolve_input(folder))
    assert_df_equality(
        df.drop(s.SOURCE_FILE),
        expected(spark, "").drop(s.SOURCE_FILE),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_malformed_lines_keep_their_text(spark: SparkSession, tmp_path: Path) -> None:
    short = GOOD_LINE.replace("1,10,", "3,10,", 1).rsplit(",", 3)[0]
    bad_time = GOOD_LINE.replace("1,10,", "4,10,", 1).replace(
        "2016-01-10 12:00:01", "2016-02-30 25:61:00"
    )
    bad_number = GOOD_LINE.replace("1,10,", "5,10,", 1).replace("-0.2,", "abc,")
    bad_flag = GOOD_LINE.replace("1,10,", "6,10,", 1).replace('"1,0"', "2")
    text = f"{HEADER}\n{GOOD_LINE}\n{short}\n{bad_time}\n{bad_number}\n{bad_flag}\n"
    path = write(tmp_path / "bad.csv", text)
    rows = {
        r[s.PURCHASE_ID]: r[s.RAW_LINE]
        for r in inputs.read_purchases(spark, inputs.resolve_input(path)).collect()
    }
    assert rows[1] is None
    assert rows[3] == short
    assert "2016-02-30 25:61:00" in rows[4]
    assert "abc" in rows[5]
    assert rows[6] is not None


def test_extra_columns_are_ignored_with_a_warning(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "extra.csv", f"{HEADER},coupon\n{GOOD_LINE},X1\n")
    with caplog.at_level(logging.WARNING, logger="hotmart_spark.inputs"):
        df = inputs.read_purchases(spark, inputs.resolve_input(path))
    assert df.columns == [f.name for f in s.LOADED_SCHEMA.fields]
    assert "ignoring extra column(s): coupon" in caplog.text


def test_bad_inputs_end_in_one_clear_line(spark: SparkSession, tmp_path: Path) -> None:
    cases: list[tuple[str, str]] = []
    cases.append((str(tmp_path / "absent.csv"), "input not found"))
    cases.append((write(tmp_path / "empty.csv", ""), "input is empty"))
    missing = write(tmp_path / "missing.csv", HEADER.replace("buyer_id,", "") + "\n1\n")
    cases.append((missing, "missing required column(s): buyer_id"))
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "_SUCCESS").write_text("")
    cases.append((str(tmp_path / "nothing"), "input folder holds no data files"))
    for path, message in cases:
        with pytest.raises(UserError) as excinfo:
            inputs.read_purchases(spark, inputs.resolve_input(path))
        assert message in str(excinfo.value)
        assert "\n" not in str(excinfo.value)


def test_wrong_format_is_named(spark: SparkSession, tmp_path: Path) -> None:
    csv = write(tmp_path / "sales.csv", f"{HEADER}\n{GOOD_LINE}\n")
    with pytest.raises(UserError, match=r"sales\.csv is not a Parquet file"):
        inputs.read_purchases(spark, inputs.resolve_input(csv, fmt="parquet"))
    folder = tmp_path / "mixed"
    spark.range(1).write.parquet(str(folder / "part"))
    write(folder / "extra.csv", f"{HEADER}\n{GOOD_LINE}\n")
    with pytest.raises(UserError, match="input mixes Parquet and text files"):
        inputs.read_purchases(spark, inputs.resolve_input(str(folder)))


def test_parquet_without_required_columns(spark: SparkSession, tmp_path: Path) -> None:
    folder = str(tmp_path / "other")
    spark.range(3).write.parquet(folder)
    with pytest.raises(UserError, match="missing required column"):
        inputs.read_purchases(spark, inputs.resolve_input(folder))


def test_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "locked.csv", f"{HEADER}\n{GOOD_LINE}\n")

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Root may read any file, so the denial is simulated where the loader opens files.
    monkeypatch.setattr(inputs, "open", denied, raising=False)
    with pytest.raises(UserError, match=r"cannot read .*locked\.csv: Permission denied"):
        inputs.resolve_input(path)


def test_tables_skip_the_dictionary_only_for_row_unique_columns(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Both columns repeat three values, so Parquet would give each a dictionary.
    rows = spark.range(30).selectExpr(f"id % 3 AS {s.PURCHASE_ID}", f"id % 3 AS {s.PRODUCT_ID}")
    tables.write_table(rows.coalesce(1), str(tmp_path / "table"))
    (file,) = (tmp_path / "table").glob("*.parquet")
    chunks = pq.ParquetFile(file).metadata.row_group(0)
    dictionary = {
        chunks.column(i).path_in_schema: chunks.column(i).has_dictionary_page
        for i in range(chunks.num_columns)
    }
    assert dictionary == {s.PURCHASE_ID: False, s.PRODUCT_ID: True}


def tsv(line: str) -> str:
    return line.replace('"1,0"', "1,0").replace('"0,0"', "0,0").replace(",", "\t")


def test_a_tsv_row_of_only_tabs_is_read_as_a_row_of_nulls(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Spark's CSV reader drops a line that is blank once trimmed: a row of empty fields in a
    TSV would vanish, counted nowhere."""
    header = HEADER.replace(",", "\t")
    blank = "\t" * header.count("\t")
    path = write(tmp_path / "sales.tsv", f"{header}\n{blank}\n{tsv(GOOD_LINE)}\n")
    rows = inputs.read_purchases(spark, inputs.resolve_input(path)).collect()
    assert len(rows) == 2
    empty = [r for r in rows if r[s.PURCHASE_ID] is None]
    assert len(empty) == 1
    assert all(empty[0][name] is None for name, _ in s.PURCHASE_FIELDS)


def test_a_foreign_file_in_a_folder_is_refused_or_skipped(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    write(folder / "sales.csv", f"{HEADER}\n{GOOD_LINE}\n")
    readme = write(folder / "README.txt", "Purchases of 2016\nOne row per purchase.\n")
    with pytest.raises(UserError) as refused:
        inputs.resolve_input(str(folder))
    assert str(refused.value) == (
        f"{readme} is not a purchase export (its first line is not the purchase header): "
        f"move it out of {folder}, or set input.skip_foreign_files = true"
    )
    with caplog.at_level(logging.WARNING):
        resolved = inputs.resolve_input(str(folder), skip_foreign_files=True)
    assert resolved.files == (str(folder / "sales.csv"),)
    assert f"skipping {readme}" in caplog.text
    assert inputs.read_purchases(spark, resolved).count() == 1


def test_a_header_with_a_byte_order_mark_and_quotes_is_the_purchase_header(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    quoted = ",".join(f'"{name}"' for name in HEADER.split(","))
    write(folder / "a.csv", f"{HEADER}\n{GOOD_LINE}\n")
    write(folder / "b.csv", f"\ufeff{quoted}\n{AFFILIATE_LINE}\n")
    assert len(inputs.resolve_input(str(folder)).files) == 2


def test_a_parquet_folder_with_a_stray_text_file(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    spark.createDataFrame(expected(spark, "x").drop(s.SOURCE_FILE, s.RAW_LINE).rdd).write.parquet(
        str(folder)
    )
    write(folder / "notes.txt", "not data\n")
    with pytest.raises(UserError, match="input mixes Parquet and text files"):
        inputs.resolve_input(str(folder))
    resolved = inputs.resolve_input(str(folder), skip_foreign_files=True)
    assert resolved.format == "parquet"
    assert inputs.read_purchases(spark, resolved).count() == 2
