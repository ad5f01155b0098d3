"""Where files live: local paths against Hadoop URIs, and whole-file replacement."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def hadoop_path(spark: SparkSession, path: str) -> Any:
    return spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)


def hadoop_filesystem(spark: SparkSession, path: str) -> Any:
    """The Hadoop FileSystem holding path (local, HDFS, S3...), as Spark itself sees it."""
    return hadoop_path(spark, path).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace the file at path so that a reader sees the old or the new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
