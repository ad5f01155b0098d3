"""Generate synthetic raw purchases shaped like the Hotmart 2016 sample, then print the calibration."""

from __future__ import annotations

import json
import logging
import time

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from hotmart_spark import filesystem, generate
from hotmart_spark.config import Config
from hotmart_spark.errors import UserError
from hotmart_spark.tables import persisted

log = logging.getLogger("hotmart_spark.generate")


def run(spark: SparkSession, config: Config) -> list[generate.Check]:
    """Generate config.generator.rows purchases over config.period into paths.output."""
    started = time.time()
    gen = config.generator
    out = config.paths.output
    sizes = generate.Sizes.for_rows(gen.rows)
    start, end = config.period.start, config.period.end
    if start is None or end is None:
        raise UserError("the generator needs a period of dates, not 'auto'")
    catalogue = generate.products(spark, sizes, gen.seed, start, end, gen.programme_effect)
    # The buyers, the purchases and the per-product truth all read the catalogue: make it once.
    catalogue = catalogue.persist(StorageLevel.MEMORY_AND_DISK)
    world = generate.buyers(spark, catalogue, gen.rows, gen.seed, start, end, gen.months_after)
    raw = generate.purchases_of(spark, catalogue, sizes, gen.seed, start, end, world)
    # Standardising, writing and calibrating all read the generated rows: make them once.
    # On disk only: kept in memory, a partition is unrolled on the heap first, which ran a
    # 2g driver out of memory at 100M rows even with partitions of 1M rows.
    with persisted(raw, StorageLevel.DISK_ONLY) as raw:
        moments = generate.Moments.of(raw)
        rows = generate.standardised(raw, moments)
        exported = generate.with_defects(rows, gen.defects, gen.seed, end)
        generate.write_export(exported, out, gen)
        written_s = time.time() - started
        checks = generate.calibration(rows, sizes, start, end, world.expected_per_buyer)
    after = generate.purchases_after(spark, catalogue, gen.seed, start, end, world)
    with persisted(after) as after:
        after_truth = generate.after_period_truth(after, moments, gen.months_after)
        generate.truth_buyers(world, after, moments).coalesce(gen.files).write.mode(
            "overwrite"
        ).parquet(f"{out.rstrip('/')}/{generate.TRUTH_BUYERS}")
    generate.truth_products(catalogue).coalesce(1).write.mode("overwrite").parquet(
        f"{out.rstrip('/')}/{generate.TRUTH_PRODUCTS}"
    )
    world.table.unpersist()
    catalogue.unpersist()
    print(generate.calibration_table(checks))
    filesystem.write_bytes(
        filesystem.join(out, generate.CALIBRATION_FILE),
        (json.dumps([c.__dict__ for c in checks], indent=2) + "\n").encode("utf-8"),
    )
    truth = generate.planted_truth(gen.seed, gen.programme_effect)
    truth["buyers"] = generate.buyer_process_truth(world)
    truth["after_period"] = after_truth
    filesystem.write_bytes(
        filesystem.join(out, generate.TRUTH_FILE), (json.dumps(truth, indent=2) + "\n").encode()
    )
    log.info("wrote %s rows (plus defects) to %s in %.1f s", f"{gen.rows:,}", out, written_s)
    missed = [c.metric for c in checks if not c.ok]
    if missed:
        log.warning("calibration targets missed: %s", ", ".join(missed))
    return checks
