"""Random draws as pure functions of a seed and a row's keys, so that a result does not
depend on how Spark partitions the rows or on which run computed it."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType


def uniform(seed: int, stream: str, *keys: Column) -> Column:
    """A uniform [0, 1) draw that depends only on the seed, the stream name and the keys."""
    bits = F.xxhash64(F.lit(seed), F.lit(stream), *keys).bitwiseAND(F.lit((1 << 53) - 1))
    return bits.cast(DoubleType()) / float(1 << 53)
