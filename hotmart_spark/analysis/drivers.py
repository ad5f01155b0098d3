"""Q4: what makes a product sell more: rank correlations and a tree model of log(units) scored
on held-out products with permutation importance (the programme's effect: effects.py).

The product table grows with the catalogue, not with purchases: the modelled products'
features (for the rank correlations) and the holdout's predictions are collected to pandas,
the purchases never are.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from hotmart_spark import schema as s
from hotmart_spark.config import DriversConfig
from hotmart_spark.transforms.products import DEVICES, device_share_column

TARGET = "log_units"
NUMERIC_FEATURES = [
    "price_level",
    # Age at the start of the period, not at the first sale: the wait for a first sale is
    # longer for products that sell less, so it would leak the target.
    "age_at_period_start_days",
    "mean_commission",
    "affiliate_share",
    "affiliates",
    "social_share",
    *[device_share_column(d) for d in DEVICES],
    "origins",
    "producer_other_units",
    "producer_other_revenue",
    "producer_other_products",
]
CATEGORICAL_FEATURES = ["category", "niche"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES
# Features that move together are shuffled together for permutation importance: shuffled one
# at a time, each would look unimportant while its partners still carry what it says.
FEATURE_GROUPS: dict[str, list[str]] = {
    "device mix": [device_share_column(d) for d in DEVICES],
    "producer size": ["producer_other_units", "producer_other_revenue", "producer_other_products"],
    "affiliate sales": ["mean_commission", "affiliate_share", "affiliates"],
}
Z95 = 1.959963984540054


def group_of(feature: str) -> str:
    """The importance group of a feature: its named group, or itself."""
    return next((g for g, members in FEATURE_GROUPS.items() if feature in members), feature)


def importance_groups() -> dict[str, list[str]]:
    """Every group and its features, in the order the features are listed."""
    groups: dict[str, list[str]] = {}
    for feature in FEATURES:
        groups.setdefault(group_of(feature), []).append(feature)
    return groups


# Products grouped by whether a commission was paid on one of their first sales, in the
# table of group medians (the programme's effect is estimated in analysis/effects.py).
PROGRAMME_SEEN = "affiliate_programme"


# Column types of the small tables, given so a run whose numbers are all missing writes the
# same schema as any other.
MODEL_SCHEMA = (
    "name string, holdout_r2 double, holdout_spearman double, baseline_r2 double, "
    "baseline_spearman double, n_train long, n_holdout long, importance string, "
    "products long, products_modelled long, note string"
)
MODEL_NAMES = {"gbt": "GBTRegressor", "random_forest": "RandomForestRegressor"}
IMPORTANCE_METHOD = "permutation on the holdout (drop in R2)"


@dataclass(frozen=True)
class ModelScores:
    name: str
    holdout_r2: float
    holdout_spearman: float
    baseline_r2: float
    baseline_spearman: float
    n_train: int
    n_holdout: int


def nan_to_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a number that could not be had, or a bound that does not
    exist (a correction with no finite answer), is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def spearman(frame: pd.DataFrame, columns: list[str], target: str) -> dict[str, float | None]:
    """Spearman correlation of each column with the target, ties given their mean rank (None
    for a constant column)."""
    ranks = frame[[*columns, target]].astype("float64").rank()
    # A constant column's correlation divides by zero: NaN, then None, without the warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        return {c: nan_to_none(ranks[c].corr(ranks[target])) for c in columns}


def spearman_interval(r: float | None, n: int) -> tuple[float | None, float | None]:
    """A 95% interval for a Spearman correlation: Fisher's z with Bonett and Wright's (2000)
    variance (1 + r^2 / 2) / (n - 3)."""
    if r is None or n <= 3 or abs(r) >= 1:
        return None, None
    z, se = math.atanh(r), math.sqrt((1 + r * r / 2) / (n - 3))
    return math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)


def modelled_products(products: DataFrame, early_sales: int) -> DataFrame:
    """Products whose features come from a full `early_sales` first sales and are all known
    (a product without a creation date has no age)."""
    return products.where(F.col("feature_sales") == early_sales).dropna(subset=FEATURES)


# Producers are drawn by a hash bucket out of this many: a share to 1 in 10,000.
PRODUCER_BUCKETS = 10_000


def producers_drawn(share: float, seed: int) -> Column:
    """True for the products of a fixed share of producers, by a hash of producer_id and the
    seed: the same producers whatever the partitioning or row order."""
    bucket = F.pmod(F.xxhash64(F.col(s.PRODUCER_ID), F.lit(seed)), F.lit(PRODUCER_BUCKETS))
    return bucket < F.lit(round(share * PRODUCER_BUCKETS))


def producer_sample(table: DataFrame, products: int, max_products: int, seed: int) -> DataFrame:
    """The products of a random share of producers holding about max_products of the table's
    `products`; the whole table when it has no more. Whole producers: the effect's errors are
    clustered by producer, so a sample of producers is what they can widen their intervals
    for."""
    if products <= max_products:
        return table
    return table.where(producers_drawn(max_products / products, seed))


def with_split(products: DataFrame, holdout_share: float, seed: int) -> DataFrame:
    """`holdout`: the products of a fixed share of producers (producers_drawn). Whole
    producers are held out: a producer's products share its appeal, and a model scored on
    products whose siblings it trained on would be scored on what it memorised."""
    # Rows come out of a shuffle in the order its blocks arrived; the trees' split sampling
    # and the permutations depend on row order, so it is fixed here. One partition: the
    # model's many passes are Spark jobs over a catalogue-sized table, whose cost is tasks.
    return (
        products.withColumn("holdout", producers_drawn(holdout_share, seed))
        .coalesce(1)
        .sortWithinPartitions(s.PRODUCT_ID)
    )


def pipeline(config: DriversConfig) -> Pipeline:
    """Index the categorical features, assemble, fit the configured tree ensemble on log(units)."""
    indexed = [f"_{c}_index" for c in CATEGORICAL_FEATURES]
    trees = {
        "gbt": GBTRegressor(maxIter=config.trees, stepSize=0.1),
        "random_forest": RandomForestRegressor(numTrees=config.trees),
    }[config.model]
    trees.setFeaturesCol("_features").setLabelCol(TARGET).setMaxDepth(config.max_depth)
    # More bins than levels, so every niche can go its own way at a split.
    # At least 20 products per leaf: fewer let the trees chase single products' noise.
    trees.setMaxBins(64).setMinInstancesPerNode(20).setSeed(config.seed)
    return Pipeline(
        stages=[
            StringIndexer(inputCols=CATEGORICAL_FEATURES, outputCols=indexed, handleInvalid="keep"),
            VectorAssembler(inputCols=[*NUMERIC_FEATURES, *indexed], outputCol="_features"),
            trees,
        ]
    )


def total_sum_of_squares(frame: pd.DataFrame) -> float:
    """SST: the squared deviations of log(units) from their mean, summed."""
    return float(((frame[TARGET] - frame[TARGET].mean()) ** 2).sum())


def r2(frame: pd.DataFrame, predictions: list[str]) -> dict[str, float]:
    """1 - SSE / SST of each prediction column against log(units)."""
    sst = total_sum_of_squares(frame)
    return {p: 1 - float(((frame[TARGET] - frame[p]) ** 2).sum()) / sst for p in predictions}


def baseline_predictions(train: DataFrame, holdout: DataFrame) -> DataFrame:
    """holdout with `baseline`: the training mean of log(units) in its category and niche, or
    over all training products for a pair not seen in training. The mean, not the median:
    R2 rewards the mean, and a median of a skewed target scores below 0 without being worse."""
    means = train.groupBy("category", "niche").agg(F.avg(TARGET).alias("_pair_mean"))
    overall = train.agg(F.avg(TARGET).alias("_overall"))
    return (
        holdout.join(F.broadcast(means), ["category", "niche"], "left")
        .crossJoin(F.broadcast(overall))
        .withColumn("baseline", F.coalesce("_pair_mean", "_overall"))
        .drop("_pair_mean", "_overall")
    )


def fit_model(
    products: DataFrame, config: DriversConfig
) -> tuple[PipelineModel, ModelScores, DataFrame]:
    """Fit on the training products; score the model and the baseline on the held-out ones.
    Returns the model, its scores and the held-out products."""
    train = products.where(~F.col("holdout"))
    holdout = products.where(F.col("holdout"))
    model = pipeline(config).fit(train)
    # Each held-out product's log units, prediction and baseline, collected once in product
    # order (so the sums repeat): the scores then need no Spark jobs of their own, where
    # the R2 took one and MLlib's correlation four.
    scored = (
        model.transform(baseline_predictions(train, holdout))
        .select(s.PRODUCT_ID, TARGET, "prediction", "baseline")
        .orderBy(s.PRODUCT_ID)
        .toPandas()
    )
    r2s = r2(scored, ["prediction", "baseline"])
    correlations = spearman(scored, ["prediction", "baseline"], TARGET)
    scores = ModelScores(
        name=MODEL_NAMES[config.model],
        holdout_r2=r2s["prediction"],
        holdout_spearman=correlations["prediction"],
        baseline_r2=r2s["baseline"],
        baseline_spearman=correlations["baseline"],
        n_train=train.count(),
        n_holdout=len(scored),
    )
    return model, scores, holdout


def permutation_sample(holdout: DataFrame, max_products: int, seed: int) -> pd.DataFrame:
    """The held-out products permutation importance scores: at most max_products, those first
    by a hash of product_id and the seed (the same ones on every run), in product_id order."""
    return (
        holdout.select(s.PRODUCT_ID, *FEATURES, TARGET)
        .orderBy(F.xxhash64(F.col(s.PRODUCT_ID), F.lit(seed)), s.PRODUCT_ID)
        .limit(max_products)
        .toPandas()
        .sort_values(s.PRODUCT_ID, ignore_index=True)
    )


def permutation_importance(
    spark: SparkSession,
    model: PipelineModel,
    holdout: pd.DataFrame,
    groups: dict[str, list[str]],
    repeats: int,
    seed: int,
) -> pd.DataFrame:
    """Drop in holdout R2 when a group's features are shuffled together (one permutation of
    the held-out products for all of them) across the held-out products, mean and sd over
    `repeats` shuffles; indexed by group. All shuffled copies are scored in one Spark job."""
    rng = np.random.default_rng(seed)
    copies = [holdout.assign(_feature="", _repeat=0)]
    for group, members in groups.items():
        for repeat in range(repeats):
            copy = holdout.assign(_feature=group, _repeat=repeat)
            order = rng.permutation(len(copy))
            copy[members] = copy[members].to_numpy()[order]
            copies.append(copy)
    # One DataFrame of every copy, in one partition. The partition is what keeps the model
    # out of the optimizer: on a DataFrame made from local data it runs the model's
    # projection itself, row by row and interpreted, on the driver (7-11 s instead of 2 s at
    # 1.6M rows, 28 copies of 1,491 products). One task also sums each copy's errors in the
    # same order on every run.
    shuffled = spark.createDataFrame(pd.concat(copies, ignore_index=True)).coalesce(1)
    by_copy = (
        model.transform(shuffled)
        .groupBy("_feature", "_repeat")
        .agg(F.sum((F.col(TARGET) - F.col("prediction")) ** 2).alias("sse"))
        .toPandas()
    )
    intact_sse = float(by_copy.loc[by_copy["_feature"] == "", "sse"].iloc[0])
    sst = total_sum_of_squares(holdout)
    by_copy = by_copy[by_copy["_feature"] != ""]
    # R2 drop = (SSE shuffled - SSE intact) / SST.
    by_copy["drop"] = (by_copy["sse"] - intact_sse) / sst
    table = by_copy.groupby("_feature")["drop"].agg(["mean", "std"]).reindex(list(groups))
    return table.rename(
        columns={"mean": "permutation_importance", "std": "permutation_importance_sd"}
    ).rename_axis("group")


def impurity_importance(model: PipelineModel) -> dict[str, float]:
    """The trees' own (impurity) importances, per assembled feature, for comparison."""
    values = model.stages[-1].featureImportances.toArray()
    return dict(zip(FEATURES, map(float, values), strict=True))


def importance_table(
    correlations: dict[str, float | None],
    n: int,
    permutation: pd.DataFrame,
    impurity: dict[str, float],
) -> pd.DataFrame:
    """One row per feature: its group, kind, Spearman with units and its 95% interval (numeric
    features, over n products), its group's permutation importance and its own impurity
    importance; most important group first."""
    table = pd.DataFrame(
        {
            "feature": FEATURES,
            "group": [group_of(f) for f in FEATURES],
            "kind": ["numeric"] * len(NUMERIC_FEATURES)
            + ["categorical"] * len(CATEGORICAL_FEATURES),
        }
    )
    table["spearman"] = table["feature"].map(correlations).astype("float64")
    bounds = [spearman_interval(correlations.get(f), n) for f in FEATURES]
    table["spearman_low"] = pd.Series([b[0] for b in bounds], dtype="float64")
    table["spearman_high"] = pd.Series([b[1] for b in bounds], dtype="float64")
    table = table.join(permutation, on="group")
    table["impurity_importance"] = table["feature"].map(impurity).astype("float64")
    return table.sort_values(
        ["permutation_importance", "group"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


@dataclass(frozen=True)
class Analysis:
    importance: pd.DataFrame  # importance_table
    model: dict[str, Any]  # one row of MODEL_SCHEMA


def analyse(
    spark: SparkSession, modelled: DataFrame, n_products: int, config: DriversConfig
) -> Analysis:
    """Rank correlations and the model with permutation importance on the modelled products
    (cached by the caller). With fewer than `min_products` the model is skipped with a note."""
    # The modelled products' features: sized by the catalogue, not by purchases. In product
    # order: a shuffle's rows come in the order its blocks arrive, and the fits' last digits
    # would follow that order.
    features = modelled.orderBy(s.PRODUCT_ID).select(*NUMERIC_FEATURES, "units").toPandas()
    n_modelled = len(features)
    model = {
        "name": MODEL_NAMES[config.model],
        "importance": IMPORTANCE_METHOD,
        "products": n_products,
        "products_modelled": n_modelled,
        "note": "",
    }
    if n_modelled < config.min_products:
        model["note"] = (
            f"only {n_modelled} products have {config.early_sales} sales; the model needs "
            f"drivers.min_products ({config.min_products})"
        )
        empty = pd.DataFrame(
            index=pd.Index(list(importance_groups()), name="group"),
            columns=["permutation_importance", "permutation_importance_sd"],
            dtype="float64",
        )
        return Analysis(importance_table({}, 0, empty, {}), model)
    correlations = spearman(features, NUMERIC_FEATURES, "units")
    fitted, scores, holdout_products = fit_model(modelled, config)
    holdout = permutation_sample(holdout_products, config.permutation_max_products, config.seed)
    permutation = permutation_importance(
        spark, fitted, holdout, importance_groups(), config.permutation_repeats, config.seed
    )
    model.update(dataclasses.asdict(scores))
    return Analysis(
        importance_table(correlations, n_modelled, permutation, impurity_importance(fitted)),
        model,
    )
