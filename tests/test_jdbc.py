"""The MySQL/MariaDB source: a real MariaDB server on 127.0.0.1, started and stopped here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import inputs, jdbc
from hotmart_spark import schema as s
from hotmart_spark.config import load_config
from hotmart_spark.errors import UserError
from hotmart_spark.stages import load_mysql, validate
from tests.conftest import JDBC_JAR, SmallRun, missing_tool, run_stage

PASSWORD = "Pw-never-logged-7c1e"
USER = "hotmart"
MARIADBD = "/usr/sbin/mariadbd"


@dataclass(frozen=True)
class Server:
    port: int
    socket: Path

    def url(self, table: str = "sales_data", database: str = "shop") -> str:
        return f"jdbc:mysql://127.0.0.1:{self.port}/{database}?table={table}"

    def sql(self, statement: str) -> None:
        subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", statement],
            check=True,
            capture_output=True,
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A MariaDB server with its own data folder, schema `shop` and a user with a password."""
    if not Path(MARIADBD).exists() or shutil.which("mariadb-install-db") is None:
        missing_tool("MariaDB server")
    if not JDBC_JAR.is_file():
        missing_tool("MariaDB Connector/J (libmariadb-java)")
    root = tmp_path_factory.mktemp("mariadb")
    data, sock, port = root / "data", root / "mariadb.sock", free_port()
    # Running as root is what CI does; mariadbd refuses it unless told to.
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={data}", *user],
        check=True,
        capture_output=True,
    )
    process = subprocess.Popen(
        [MARIADBD, "--no-defaults", f"--datadir={data}", f"--socket={sock}", f"--port={port}",
         "--bind-address=127.0.0.1", "--skip-log-bin", f"--log-error={root / 'error.log'}",
         *user],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        found = Server(port, sock)
        for _ in range(100):
            try:
                found.sql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.2)
        found.sql(
            f"CREATE DATABASE shop; CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT ALL ON shop.* TO '{USER}'@'127.0.0.1';"
        )
        yield found
    finally:
        process.terminate()
        process.wait(timeout=60)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(jdbc.USER_ENV, USER)
    monkeypatch.setenv(jdbc.PASSWORD_ENV, PASSWORD)


@pytest.fixture(scope="module")
def loaded_table(spark: SparkSession, server: Server, small_run: SmallRun) -> dict:
    """The small run's generated rows loaded into shop.sales_data."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(jdbc.USER_ENV, USER)
        patch.setenv(jdbc.PASSWORD_ENV, PASSWORD)
        config = load_config(
            overrides=[f"paths.input={small_run.raw}", f"paths.output={server.url()}"]
        )
        return load_mysql.run(spark, config)


def run_validate(spark: SparkSession, source: str, out: Path, *overrides: str) -> dict:
    config = load_config(overrides=[f"paths.input={source}", f"paths.output={out}", *overrides])
    return run_stage(spark, validate, config)


@pytest.mark.database
def test_the_table_reads_back_as_the_csv_did(
    spark: SparkSession,
    server: Server,
    small_run: SmallRun,
    loaded_table: dict,
    credentials: None,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert loaded_table["loaded"] > 4000 and loaded_table["malformed"] > 0
    out = tmp_path / "out"
    record = run_validate(spark, server.url(), out, "jdbc.num_partitions=3")
    # Malformed lines are the only rows the typed table could not hold.
    from_csv = small_run.results["validate"]
    assert record["rows_in"] == loaded_table["loaded"]
    assert record["rows_in"] == from_csv["rows_in"] - loaded_table["malformed"]
    assert record["rows_clean"] == from_csv["rows_clean"]
    assert_df_equality(
        spark.read.parquet(str(out / "clean")),
        spark.read.parquet(str(small_run.out / "clean")),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    manifest = (out / "manifest.json").read_text()
    described = json.loads(manifest)["runs"][0]["stages"]["validate"]["input"]
    assert described == {
        "path": f"jdbc:mysql://127.0.0.1:{server.port}/shop?table=sales_data",
        "format": "jdbc",
        "table": "sales_data",
    }
    captured = capfd.readouterr()
    # The Spark UI's environment page shows the Spark configuration.
    spark_conf = str(spark.sparkContext.getConf().getAll())
    for text in (manifest, captured.out, captured.err, caplog.text, spark_conf):
        assert PASSWORD not in text


@pytest.mark.database
def test_reads_run_in_ranges_of_purchase_id(
    spark: SparkSession, server: Server, loaded_table: dict, credentials: None
) -> None:
    config = load_config(overrides=["jdbc.num_partitions=3"])
    purchases = jdbc.read_purchases(
        spark, jdbc.parse_source(server.url()), config.jdbc, config.input
    )
    assert purchases.rdd.getNumPartitions() == 3
    assert purchases.count() == loaded_table["loaded"]
    assert purchases.columns == [f.name for f in s.LOADED_SCHEMA.fields]


@pytest.mark.database
def test_a_month_range_reads_only_those_months(
    spark: SparkSession,
    server: Server,
    small_run: SmallRun,
    loaded_table: dict,
    credentials: None,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    record = run_validate(
        spark, server.url(), out, "input.from_month=2016-02", "input.to_month=2016-03"
    )
    files = inputs.resolve_input(str(small_run.raw))
    in_range = (
        inputs.read_purchases(spark, files)
        .where(F.col(s.RAW_LINE).isNull())
        .where(F.date_format(s.PURCHASE_DATE, "yyyy-MM").isin("2016-02", "2016-03"))
        .count()
    )
    assert record["rows_in"] == in_range
    months = sorted(p.name for p in (out / "clean").glob("purchase_month=*"))
    assert months == ["purchase_month=2016-02", "purchase_month=2016-03"]


@pytest.mark.database
def test_failures_end_in_one_line_without_the_password(
    spark: SparkSession,
    server: Server,
    loaded_table: dict,
    credentials: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    config = load_config()

    def failure(url: str) -> str:
        with pytest.raises(UserError) as caught:
            jdbc.read_purchases(spark, jdbc.parse_source(url), config.jdbc, config.input)
        message = str(caught.value)
        assert "\n" not in message and PASSWORD not in message
        return message

    server.sql("CREATE TABLE shop.partial (purchase_id BIGINT, buyer_id BIGINT)")
    assert failure(server.url("nope")) == (f"table shop.nope not found at 127.0.0.1:{server.port}")
    assert failure(server.url("partial")).startswith(
        f"shop.partial at 127.0.0.1:{server.port}: missing required column(s): product_id"
    )
    closed = free_port()
    assert failure(f"jdbc:mysql://127.0.0.1:{closed}/shop?table=sales_data") == (
        f"cannot reach the database at 127.0.0.1:{closed}"
    )
    monkeypatch.setenv(jdbc.PASSWORD_ENV, "wrong-" + PASSWORD)
    assert failure(server.url()) == (
        f"the database at 127.0.0.1:{server.port} refused user 'hotmart': "
        "check the user and password"
    )
    captured = capfd.readouterr()
    assert PASSWORD not in captured.out + captured.err


def test_source_names_and_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = jdbc.parse_source("jdbc:mysql://db.example:3307/shop?table=sales_data")
    assert (source.host, source.port, source.database, source.table) == (
        "db.example", 3307, "shop", "sales_data",
    )  # fmt: skip
    assert source.url == "jdbc:mysql://db.example:3307/shop?permitMysqlScheme"
    assert jdbc.parse_source("jdbc:mariadb://db/shop?table=t").port == 3306
    with pytest.raises(UserError, match="no credentials in the input URL"):
        jdbc.parse_source("jdbc:mysql://db/shop?table=t&password=x")
    with pytest.raises(UserError, match=r"looks like jdbc:mysql://host:port/schema\?table="):
        jdbc.parse_source("jdbc:mysql://db/shop")
    with pytest.raises(UserError, match="characters other than"):
        jdbc.parse_source("jdbc:mysql://db/shop?table=t;drop")

    monkeypatch.delenv(jdbc.USER_ENV, raising=False)
    monkeypatch.delenv(jdbc.PASSWORD_ENV, raising=False)
    with pytest.raises(UserError, match="no database credentials: set HOTMART_DB_USER"):
        jdbc.credentials("")
    secrets = tmp_path / "db.txt"
    secrets.write_text("user=reader\npassword=p=q\n")
    secrets.chmod(0o644)
    with pytest.raises(UserError, match=f"readable by others: chmod 600 {secrets}"):
        jdbc.credentials(str(secrets))
    secrets.chmod(0o600)
    assert jdbc.credentials(str(secrets)) == ("reader", "p=q")
    monkeypatch.setenv(jdbc.USER_ENV, "env-user")
    monkeypatch.setenv(jdbc.PASSWORD_ENV, "env-pw")
    assert jdbc.credentials(str(secrets)) == ("env-user", "env-pw")


@pytest.mark.submit
def test_spark_submit_says_what_to_install_without_the_driver() -> None:
    script = Path(__file__).resolve().parents[1] / "spark-submit.sh"
    finished = subprocess.run(
        [str(script), "jobs/validate.py", "--input", "jdbc:mysql://127.0.0.1:1/shop?table=t"],
        cwd=script.parent,
        env={**os.environ, "HOTMART_JDBC_JAR": "/nonexistent/mariadb-java-client.jar"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.strip() == (
        "error: a JDBC input needs MariaDB Connector/J: install libmariadb-java (Debian) "
        "or set HOTMART_JDBC_JAR"
    )
