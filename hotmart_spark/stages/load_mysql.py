"""Load a generated (or any) purchase export into a MySQL/MariaDB table, for demos and tests.

./spark-submit.sh jobs/load_mysql.py --input data/generated \\
    --output 'jdbc:mysql://127.0.0.1:3306/shop?table=sales_data'
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from hotmart_spark import inputs, jdbc
from hotmart_spark import schema as s
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.tables import persisted

log = logging.getLogger("hotmart_spark.load_mysql")


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    if not jdbc.is_jdbc(config.paths.output):
        raise UserError("--output must name a table: jdbc:mysql://host:port/schema?table=name")
    target = jdbc.parse_source(config.paths.output)
    files = inputs.resolve_input(
        config.paths.input,
        config.input.format,
        config.input.separator,
        config.input.encoding,
        config.input.skip_foreign_files,
    )
    with persisted(inputs.read_purchases(spark, files, config.input.encoding)) as purchases:
        # A typed table cannot hold a line that did not parse: those are counted, not loaded.
        loadable = purchases.where(F.col(s.RAW_LINE).isNull())
        counts = purchases.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col(s.RAW_LINE).isNotNull().cast("long")).alias("malformed"),
        ).first()
        jdbc.write_table(loadable, target, config.jdbc)
    loaded = counts["rows"] - (counts["malformed"] or 0)
    log.info(
        "loaded %d rows into %s; %d malformed lines not loaded",
        loaded,
        target.name,
        counts["malformed"] or 0,
    )
    return {"loaded": loaded, "malformed": counts["malformed"] or 0}
