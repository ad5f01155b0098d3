"""The one place money is derived from the z-scored purchase_value."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.config import RELATIVE_UNIT, ValueConfig
from hotmart_spark.errors import NotEnoughData


@dataclass(frozen=True)
class ValueScale:
    """value = offset + scale * z, in `unit`."""

    offset: float
    scale: float
    unit: str


def value_scale(mean: float, std: float, currency: str, z_min: float) -> ValueScale:
    """Currency when mean and std are known (std > 0); otherwise z - z_min, relative units."""
    if std > 0:
        return ValueScale(offset=mean, scale=std, unit=currency)
    return ValueScale(offset=-z_min, scale=1.0, unit=RELATIVE_UNIT)


def with_value(purchases: DataFrame, scale: ValueScale, platform_fee_rate: float) -> DataFrame:
    """Adds `value` and `platform_revenue` (the platform's fee on the value) to each purchase."""
    value = F.lit(scale.offset) + F.lit(scale.scale) * F.col(s.PURCHASE_VALUE)
    return purchases.withColumn("value", value).withColumn(
        "platform_revenue", F.col("value") * platform_fee_rate
    )


def valued_purchases(clean: DataFrame, value: ValueConfig) -> tuple[DataFrame, ValueScale, float]:
    """Clean purchases with value, the scale used and z_min (min purchase_value of the clean rows)."""
    z_min, z_max = clean.agg(F.min(s.PURCHASE_VALUE), F.max(s.PURCHASE_VALUE)).first()
    if z_min is None:
        raise NotEnoughData("the clean table has no rows")
    if z_max == z_min and value.std == 0:
        raise NotEnoughData(
            "every clean purchase has the same purchase_value, so every relative value is 0: "
            "set value.mean and value.std"
        )
    scale = value_scale(value.mean, value.std, value.currency, z_min)
    return with_value(clean, scale, value.platform_fee_rate), scale, z_min
