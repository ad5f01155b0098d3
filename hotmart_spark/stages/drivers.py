"""Product drivers (Q4): the product table, what makes a product sell more, and one lever's effect."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyspark.sql import SparkSession

from hotmart_spark import schema as s
from hotmart_spark.analysis import drivers, effects
from hotmart_spark.config import Config
from hotmart_spark.stages.stage import (
    Stage,
    output_root,
    period,
    publish_insights,
    read,
    record_in_manifest,
    write,
)
from hotmart_spark.tables import persisted
from hotmart_spark.transforms import products
from hotmart_spark.transforms.revenue import valued_purchases

log = logging.getLogger("hotmart_spark.drivers")


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.time()
    settings = config.drivers
    purchases, scale, _ = valued_purchases(read(spark, config.paths.input, "clean"), config.value)
    # The write counts the products as it writes them: the catalogue's size needs no job.
    catalogue = write(
        products.product_table(purchases, period(config), settings.early_sales),
        config,
        "marts/products",
    )
    table = read(spark, output_root(config), "marts/products")
    groups = [
        products.group_medians(table, f) for f in ("category", "niche", drivers.PROGRAMME_SEEN)
    ]
    write(
        groups[0].unionByName(groups[1]).unionByName(groups[2]),
        config,
        "marts/product_feature_groups",
    )
    modelled = drivers.with_split(
        drivers.modelled_products(table, settings.early_sales),
        settings.holdout_share,
        settings.seed,
    )
    with persisted(modelled) as modelled:
        analysis = drivers.analyse(spark, modelled, catalogue, settings)
    # Every product, whatever it sold, up to the cap: in product order so the fits' last
    # digits do not follow the order a shuffle delivered the rows in.
    sample = drivers.producer_sample(table, catalogue, settings.effect_max_products, settings.seed)
    effect_products = (
        sample.select(*effects.COLUMNS, "later_early_sale_affiliate")
        .orderBy(s.PRODUCT_ID)
        .toPandas()
    )
    effect = effects.estimate_effect(effect_products, settings.seed)
    effect.overlap["catalogue_products"] = catalogue
    if len(effect_products) < catalogue:
        log.info(
            "effect estimated on the products of a sample of producers: %d of %d "
            "(drivers.effect_max_products)",
            len(effect_products),
            catalogue,
        )
    model = analysis.model
    write(spark.createDataFrame(analysis.importance), config, "marts/product_drivers")
    write(spark.createDataFrame([model], drivers.MODEL_SCHEMA), config, "marts/product_model")
    estimates = [e.as_dict() for e in effect.estimates]
    write(
        spark.createDataFrame(estimates, effects.ESTIMATES_SCHEMA),
        config,
        "marts/product_effects",
    )
    write(
        spark.createDataFrame(effect.balance, effects.BALANCE_SCHEMA),
        config,
        "marts/product_effect_balance",
    )
    insights = drivers_insights(analysis, effect, scale.unit, settings.early_sales)
    publish_insights(config, "drivers", insights)
    record_in_manifest(
        config,
        "drivers",
        {
            "input": config.paths.input,
            "value_unit": scale.unit,
            "products": model["products"],
            "products_modelled": model["products_modelled"],
            "timings": {"total_s": round(time.time() - started, 2)},
        },
    )
    if model["note"]:
        log.warning("%s", model["note"])
    else:
        log.info(
            "%s on log(units), %d products held out: R2 %.3f (category-niche mean %.3f)",
            model["name"],
            model["n_holdout"],
            model["holdout_r2"],
            model["baseline_r2"],
        )
        for r in insights["groups"][:5]:
            log.info("%-28s permutation importance %.4f", r["group"], r["importance"])
    if effect.note:
        log.warning("affiliate programme: %s", effect.note)
    for e in effect.estimates:
        log.info(
            "affiliate programme, %s: %+.3f log ratio [%+.3f, %+.3f] %s",
            e.method,
            e.estimate,
            e.ci_low,
            e.ci_high,
            e.note,
        )
    log.info("drivers written under %s/marts in %.1f s", output_root(config), time.time() - started)
    return insights


def drivers_insights(
    analysis: drivers.Analysis, effect: effects.Result, unit: str, early_sales: int
) -> dict[str, Any]:
    """Q4's headline numbers: each feature's correlation and importance (most important
    first), the model against its baseline, and the programme's effect: the headline
    estimate, every estimator, overlap, balance and sensitivity."""
    headline = effect.headline
    return {
        "value_unit": unit,
        "early_sales": early_sales,
        "features": [
            {
                "feature": r["feature"],
                "group": r["group"],
                "spearman": drivers.nan_to_none(r["spearman"]),
                "spearman_low": drivers.nan_to_none(r["spearman_low"]),
                "spearman_high": drivers.nan_to_none(r["spearman_high"]),
                "spearman_undefined": None
                if r["feature"] in drivers.NUMERIC_FEATURES
                else "a categorical feature has no rank order",
            }
            for r in analysis.importance.to_dict("records")
        ],
        "groups": [
            {
                "group": group,
                "features": rows["feature"].tolist(),
                "importance": drivers.nan_to_none(rows["permutation_importance"].iloc[0]),
                "importance_sd": drivers.nan_to_none(rows["permutation_importance_sd"].iloc[0]),
            }
            for group, rows in analysis.importance.groupby("group", sort=False)
        ],
        "model": analysis.model,
        "estimand": effects.ESTIMAND,
        "effect": None if headline is None else headline.as_dict(),
        "effect_note": effect.note,
        "effects": [e.as_dict() for e in effect.estimates],
        "overlap": effect.overlap,
        "balance": effect.balance.to_dict("records"),
        "sensitivity": effect.sensitivity,
        "observational": True,
    }


STAGE = Stage("drivers", reads=("clean",), run=run)
