"""Shares of a column's total across the rows of a small summary table."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def with_shares(summary: DataFrame, shares: Mapping[str, str]) -> DataFrame:
    """Adds, for each {column: share_name}, the row's share of the column's total."""
    totals = summary.agg(*[F.sum(c).alias(f"_total_{c}") for c in shares])
    shared = summary.crossJoin(F.broadcast(totals))
    for column, name in shares.items():
        shared = shared.withColumn(name, F.col(column) / F.col(f"_total_{column}"))
    return shared.drop(*[f"_total_{c}" for c in shares])
