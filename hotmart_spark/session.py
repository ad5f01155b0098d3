"""The one place a SparkSession is built."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import SparkSession

# Settings every job relies on, whatever the properties file says: results must not depend
# on the machine's time zone, re-running a month must replace only that month, and
# timestamps are written as Parquet's standard INT64 microseconds, not Spark's legacy INT96,
# which other readers (pandas, DuckDB, Trino) treat as deprecated.
REQUIRED_SETTINGS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


def build_session(app_name: str, extra: Mapping[str, str] | None = None) -> SparkSession:
    """Session for a job; the master comes from spark-submit (local[*] when run directly)."""
    builder = SparkSession.builder.appName(app_name)
    for key, value in {**REQUIRED_SETTINGS, **(extra or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
