"""The raw purchase schema and the column names that are the contract between stages."""

from __future__ import annotations

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

PURCHASE_ID = "purchase_id"
PRODUCT_ID = "product_id"
PRODUCER_ID = "producer_id"
AFFILIATE_ID = "affiliate_id"
BUYER_ID = "buyer_id"
PURCHASE_DATE = "purchase_date"
PRODUCT_CREATION_DATE = "product_creation_date"
PRODUCT_CATEGORY = "product_category"
PRODUCT_NICHE = "product_niche"
PURCHASE_VALUE = "purchase_value"
COMMISSION = "affiliate_commission_percentual"
PURCHASE_DEVICE = "purchase_device"
PURCHASE_ORIGIN = "purchase_origin"
IS_SOCIAL = "is_origin_page_social_network"
VENDA = "Venda"

# Added by the loader and validation.
SOURCE_FILE = "source_file"
RAW_LINE = "raw_line"
REASONS = "reasons"
WARNINGS = "warnings"
PURCHASE_MONTH = "purchase_month"

PURCHASE_FIELDS: tuple[tuple[str, DataType], ...] = (
    (PURCHASE_ID, LongType()),
    (PRODUCT_ID, LongType()),
    (AFFILIATE_ID, LongType()),
    (PRODUCER_ID, LongType()),
    (BUYER_ID, LongType()),
    (PURCHASE_DATE, TimestampType()),
    (PRODUCT_CREATION_DATE, TimestampType()),
    (PRODUCT_CATEGORY, StringType()),
    (PRODUCT_NICHE, StringType()),
    (PURCHASE_VALUE, DoubleType()),
    (COMMISSION, DoubleType()),
    (PURCHASE_DEVICE, StringType()),
    (PURCHASE_ORIGIN, StringType()),
    (IS_SOCIAL, IntegerType()),
)

# The real export has the purchase fields, then Venda (always 1, absent from some exports).
REQUIRED_COLUMNS: tuple[str, ...] = tuple(name for name, _ in PURCHASE_FIELDS)
OPTIONAL_COLUMNS: tuple[str, ...] = (VENDA,)

# A row without these cannot be counted, attributed or valued.
NOT_NULL_COLUMNS: tuple[str, ...] = (
    PURCHASE_ID,
    PRODUCT_ID,
    PRODUCER_ID,
    AFFILIATE_ID,
    BUYER_ID,
    PURCHASE_DATE,
    PURCHASE_VALUE,
)
# The free-text purchase fields.
TEXT_COLUMNS: tuple[str, ...] = (PRODUCT_CATEGORY, PRODUCT_NICHE, PURCHASE_DEVICE, PURCHASE_ORIGIN)

# What the loader hands to validation: the purchase fields plus lineage of each row.
LOADED_SCHEMA = StructType(
    [StructField(name, dtype) for name, dtype in PURCHASE_FIELDS]
    + [StructField(SOURCE_FILE, StringType()), StructField(RAW_LINE, StringType())]
)

# The clean table: what later stages read.
CLEAN_SCHEMA = StructType(
    [StructField(name, dtype) for name, dtype in PURCHASE_FIELDS]
    + [StructField(WARNINGS, ArrayType(StringType(), containsNull=False))]
    + [StructField(PURCHASE_MONTH, StringType())]
)

# The quarantine table: every loaded column, the rules each row breaks, its month.
QUARANTINE_SCHEMA = StructType(
    [
        *LOADED_SCHEMA.fields,
        StructField(REASONS, ArrayType(StringType(), containsNull=False)),
        StructField(WARNINGS, ArrayType(StringType(), containsNull=False)),
        StructField(PURCHASE_MONTH, StringType()),
    ]
)
