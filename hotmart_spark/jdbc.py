"""Read (and, for demos and tests, write) the purchase table in MySQL or MariaDB over JDBC.

The input is named `jdbc:mysql://host:port/schema?table=sales_data`. Credentials never travel
in the URL: they come from HOTMART_DB_USER / HOTMART_DB_PASSWORD or a file only its owner can
read, and go to Spark as reader options, so they stay out of logs, the manifest and the Spark
UI's environment page.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import inputs, quality
from hotmart_spark import schema as s
from hotmart_spark.config import InputConfig, JdbcConfig
from hotmart_spark.errors import UserError

SCHEMES = ("jdbc:mysql://", "jdbc:mariadb://")
DRIVER = "org.mariadb.jdbc.Driver"
# Debian's libmariadb-java: MariaDB Connector/J, which speaks to MySQL and MariaDB alike.
DRIVER_JAR = "/usr/share/java/mariadb-java-client.jar"
USER_ENV, PASSWORD_ENV = "HOTMART_DB_USER", "HOTMART_DB_PASSWORD"
IDENTIFIER = re.compile(r"^[A-Za-z0-9_$]+$")


@dataclass(frozen=True)
class JdbcSource:
    host: str
    port: int
    database: str
    table: str

    @property
    def url(self) -> str:
        """The connection URL, without credentials. The mysql scheme makes Spark use its MySQL
        dialect (backquoted names in the partition queries); Connector/J 3 takes that scheme
        only with permitMysqlScheme."""
        return f"jdbc:mysql://{self.host}:{self.port}/{self.database}?permitMysqlScheme"

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table} at {self.host}:{self.port}"

    def describe(self) -> dict[str, object]:
        """What the manifest records about the input."""
        return {
            "path": f"jdbc:mysql://{self.host}:{self.port}/{self.database}?table={self.table}",
            "format": "jdbc",
            "table": self.table,
        }


def is_jdbc(path: str) -> bool:
    return path.startswith(SCHEMES)


def parse_source(path: str) -> JdbcSource:
    """jdbc:mysql://host[:port]/schema?table=name -> JdbcSource, or one line saying what is wrong."""
    parsed = urlparse(path.removeprefix("jdbc:"))
    query = parse_qs(parsed.query)
    if {"user", "password"} & set(query) or parsed.password or parsed.username:
        raise UserError(
            f"put no credentials in the input URL; set {USER_ENV} and {PASSWORD_ENV} "
            "(or jdbc.credentials_file) instead"
        )
    database = parsed.path.strip("/")
    table = (query.get("table") or [""])[0]
    if not parsed.hostname or not database or not table:
        raise UserError(
            "a JDBC input looks like jdbc:mysql://host:port/schema?table=sales_data; "
            f"got {parsed.scheme}://{parsed.netloc}{parsed.path}"
        )
    for what, name in (("schema", database), ("table", table)):
        if not IDENTIFIER.match(name):
            raise UserError(f"JDBC {what} name {name!r} has characters other than A-Z, 0-9, _, $")
    return JdbcSource(parsed.hostname, parsed.port or 3306, database, table)


def credentials(credentials_file: str) -> tuple[str, str]:
    """(user, password) from the environment, else from a file only its owner can read."""
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if user and password is not None:
        return user, password
    if not credentials_file:
        raise UserError(
            f"no database credentials: set {USER_ENV} and {PASSWORD_ENV}, or jdbc.credentials_file"
        )
    path = Path(credentials_file)
    if not path.is_file():
        raise UserError(f"credentials file not found: {path}")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(f"credentials file {path} is readable by others: chmod 600 {path}")
    # Lines `user=...` and `password=...`.
    entries = dict(
        line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line
    )
    if "user" not in entries or "password" not in entries:
        raise UserError(f"credentials file {path} needs a user= line and a password= line")
    return entries["user"].strip(), entries["password"].strip()


def _options(source: JdbcSource, settings: JdbcConfig) -> dict[str, str]:
    user, password = credentials(settings.credentials_file)
    return {
        "url": source.url,
        "driver": DRIVER,
        "user": user,
        "password": password,
        "fetchsize": str(settings.fetch_size),
    }


def _scrubbed(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


def _causes(exc: Exception) -> str:
    """The error and every cause under it: Spark wraps the driver's own message (access
    denied, connection refused) in a general one."""
    texts = [str(exc)]
    cause = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    while cause is not None and len(texts) < 20:
        texts.append(str(cause.toString()))
        cause = cause.getCause()
    return "\n".join(texts)


def _failure(exc: Exception, source: JdbcSource, options: dict[str, str]) -> UserError:
    """One line for what went wrong talking to the database, without the password."""
    text = _scrubbed(_causes(exc), options["password"])
    if "ClassNotFoundException" in text or "No suitable driver" in text:
        return UserError(
            f"the MariaDB JDBC driver is not on Spark's classpath: install libmariadb-java "
            f"(Debian; {DRIVER_JAR}) and run through spark-submit.sh"
        )
    if "Access denied" in text:
        return UserError(
            f"the database at {source.host}:{source.port} refused user {options['user']!r}: "
            "check the user and password"
        )
    if "doesn't exist" in text and "Table" in text:
        return UserError(
            f"table {source.database}.{source.table} not found at {source.host}:{source.port}"
        )
    if "Unknown database" in text:
        return UserError(f"schema {source.database} not found at {source.host}:{source.port}")
    if any(
        sign in text
        for sign in ("Could not connect", "Connection refused", "connect timed out", "UnknownHost")
    ):
        return UserError(f"cannot reach the database at {source.host}:{source.port}")
    first = next((line for line in text.splitlines() if line.strip()), "unknown error")
    return UserError(f"cannot read {source.name}: {first.strip()[:300]}")


def read_purchases(
    spark: SparkSession, source: JdbcSource, settings: JdbcConfig, months: InputConfig
) -> DataFrame:
    """The table's purchases typed as the file loader types them (inputs.typed), read in
    `jdbc.num_partitions` ranges of purchase_id; a month range is filtered in the database."""
    options = _options(source, settings)

    def reader() -> DataFrameReader:
        # A DataFrameReader keeps every option set on it: each read starts from a new one.
        return spark.read.format("jdbc").options(**options)

    try:
        columns = reader().option("query", f"SELECT * FROM `{source.table}` WHERE 1 = 0").load()
        inputs.check_columns(source.name, columns.columns)
        start, end = quality.month_bounds(months.from_month, months.to_month)
        conditions = []
        if start is not None:
            conditions.append(f"{s.PURCHASE_DATE} >= '{start:%Y-%m-%d %H:%M:%S}'")
        if end is not None:
            conditions.append(f"{s.PURCHASE_DATE} < '{end:%Y-%m-%d %H:%M:%S}'")
        selected = ", ".join(f"`{name}`" for name, _ in s.PURCHASE_FIELDS)
        rows = f"SELECT {selected} FROM `{source.table}`"
        if conditions:
            rows += " WHERE " + " AND ".join(conditions)
        bounds = (
            reader()
            .option(
                "query",
                f"SELECT MIN({s.PURCHASE_ID}) AS lo, MAX({s.PURCHASE_ID}) AS hi FROM ({rows}) r",
            )
            .load()
            .first()
        )
        table = reader().option("dbtable", f"({rows}) AS purchases")
        if bounds["lo"] is not None and bounds["hi"] > bounds["lo"]:
            # Ranges of purchase_id read in parallel; rows with a null id land in the first.
            table = (
                table.option("partitionColumn", s.PURCHASE_ID)
                .option("lowerBound", str(bounds["lo"]))
                .option("upperBound", str(bounds["hi"] + 1))
                .option("numPartitions", str(settings.num_partitions))
            )
        raw = table.load()
    except (Py4JJavaError, PySparkException) as exc:
        raise _failure(exc, source, options) from None
    raw = raw.withColumn(inputs.CORRUPT, F.lit(None).cast("string"))
    return inputs.typed(raw, ",", F.lit(source.describe()["path"]))


def write_table(df: DataFrame, source: JdbcSource, settings: JdbcConfig) -> None:
    """Replace the table with df's purchase columns, typed by Spark's MySQL dialect (BIGINT,
    DOUBLE, DATETIME...), for demos and tests."""
    options = _options(source, settings)
    try:
        (
            df.select(*[name for name, _ in s.PURCHASE_FIELDS])
            .write.format("jdbc")
            .options(**options)
            .option("dbtable", source.table)
            .option("batchsize", str(settings.fetch_size))
            .mode("overwrite")
            .save()
        )
    except (Py4JJavaError, PySparkException) as exc:
        raise _failure(exc, source, options) from None
