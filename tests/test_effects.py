"""The programme effect's estimators, each on a table whose answer is worked out by hand."""

from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from hotmart_spark.analysis import effects
from hotmart_spark.analysis.drivers import producer_sample


def table(outcomes_treated: list[int], outcomes_control: list[int]) -> pd.DataFrame:
    """Products of one category and niche, 10 days on sale each, one producer each."""
    y = [*outcomes_treated, *outcomes_control]
    t = [1] * len(outcomes_treated) + [0] * len(outcomes_control)
    return pd.DataFrame(
        {
            effects.GROUP: range(len(y)),
            effects.OUTCOME: y,
            effects.EXPOSURE: 10,
            effects.TREATMENT: t,
            "category": "eBook",
            "niche": "Yoga",
            "first_sale_value": 1.0,
            "age_at_period_start_days": 0,
            "producer_other_products": 0,
            "producer_other_units": 0,
            "log_exposure": math.log(10),
        }
    )


def test_unadjusted_glm_is_the_log_ratio_of_the_group_means() -> None:
    # Same exposure everywhere: each group's fitted mean is its mean, 5 against 2.
    frame = effects.design(table([4, 6], [1, 3]))
    estimate, low, high = effects.glm_effect(frame, effects.TREATMENT, False, alpha=0.5)
    assert estimate == pytest.approx(math.log(2.5), abs=1e-6)
    assert low < estimate < high


def test_aipw_with_a_known_propensity_and_no_outcome_model_is_ipw() -> None:
    # e = 0.5 and m = 0: psi1 = mean(2 t y) = 2 * 10 / 4 = 5, psi0 = 2 * 4 / 4 = 2.
    frame = table([4, 6], [1, 3])
    n = len(frame)
    weighting = effects.Weighting(
        propensity=np.full(n, 0.5),
        mean_treated=np.zeros(n),
        mean_control=np.zeros(n),
        kept=np.ones(n, dtype=bool),
    )
    estimate, low, high = effects.aipw_effect(frame, effects.TREATMENT, weighting)
    assert estimate == pytest.approx(math.log(2.5))
    assert low < estimate < high


def test_aipw_drops_trimmed_products() -> None:
    # The product kept out (y = 100) would double psi1 if it counted.
    frame = table([4, 6, 100], [1, 3, 2])
    n = len(frame)
    kept = np.array([True, True, False, True, True, True])
    weighting = effects.Weighting(np.full(n, 0.5), np.zeros(n), np.zeros(n), kept)
    # Kept: treated 4, 6 and controls 1, 3, 2 over 5 products: psi1 = 2*10/5, psi0 = 2*6/5.
    estimate, _, _ = effects.aipw_effect(frame, effects.TREATMENT, weighting)
    assert estimate == pytest.approx(math.log(10 / 6))


def test_undiluted_inverts_the_dilution_of_the_controls() -> None:
    # A programme doubling sales, with a quarter of the controls in a programme:
    # observed ratio = 2 / (0.75 + 0.25 * 2) = 1.6.
    assert effects.undiluted(math.log(1.6), 0.25) == pytest.approx(math.log(2.0))
    assert effects.undiluted(0.0, 0.3) == pytest.approx(0.0)
    assert effects.undiluted(math.log(5.0), 0.25) == math.inf


def test_dilution_from_a_constant_propensity() -> None:
    # Seen share e = 0.2 with s = 0.5: programme share 0.4; of the direct first sales,
    # 0.4 * 0.5 / 0.8 = 0.25 are programme products.
    n = 4
    weighting = effects.Weighting(np.full(n, 0.2), np.ones(n), np.ones(n), np.ones(n, bool))
    assert effects.dilution(table([1, 1], [1, 1]), weighting, 0.5) == pytest.approx(0.25)


def test_affiliate_sale_share_reads_products_that_show_their_programme() -> None:
    products = pd.DataFrame(
        {
            effects.TREATMENT: [True, False, True, True, False],
            "later_early_sale_affiliate": [True, True, True, False, False],
        }
    )
    # Three products show a later affiliate sale; two of them sold first through one.
    assert effects.affiliate_sale_share(products) == (pytest.approx(2 / 3), 3)


def test_e_value_of_a_ratio_and_its_bound() -> None:
    # RR 2: 2 + sqrt(2); the bound 1.5: 1.5 + sqrt(0.75).
    point, bound = effects.e_value(math.log(2.0), math.log(1.5))
    assert point == pytest.approx(2 + math.sqrt(2))
    assert bound == pytest.approx(1.5 + math.sqrt(0.75))
    # An interval reaching 1 needs no confounding to cover the null; a ratio below 1 is inverted.
    assert effects.e_value(math.log(2.0), math.log(0.9))[1] == 1.0
    assert effects.e_value(math.log(0.5), math.log(0.8))[0] == pytest.approx(2 + math.sqrt(2))


def test_balance_of_a_covariate_before_and_after_weighting() -> None:
    # log_price 1 for the two treated, 0 and 2 for the controls: no raw difference.
    frame = effects.design(table([1, 1], [1, 1]).drop(columns="log_exposure"))
    frame["log_price"] = [1.0, 1.0, 0.0, 2.0]
    n = len(frame)
    # Weights 1/(1-e): the control at 2 counts 3 times as much as the one at 0 (e 0.5 vs 5/6),
    # so the weighted control mean is (2*0 + 6*2) / 8 = 1.5; the pooled sd is sqrt((0 + 1)/2).
    weighting = effects.Weighting(
        np.array([0.5, 0.5, 0.5, 5 / 6]), np.ones(n), np.ones(n), np.ones(n, bool)
    )
    row = effects.balance(frame, effects.TREATMENT, weighting).set_index("covariate")
    assert row.loc["log_price", "smd_raw"] == pytest.approx(0.0)
    assert row.loc["log_price", "smd_weighted"] == pytest.approx(-0.5 / math.sqrt(0.5))


def test_shuffle_within_strata_keeps_each_strata_treated_count() -> None:
    frame = pd.concat([table([1, 2, 3], [4, 5]), table([6], [7, 8]).assign(niche="Music")])
    frame = frame.reset_index(drop=True)
    shuffled = effects.shuffled_within_strata(frame, seed=1)
    by_niche = shuffled.groupby("niche")[effects.TREATMENT].sum()
    assert by_niche.to_dict() == {"Yoga": 3, "Music": 1}


def test_folds_follow_the_producer() -> None:
    groups = pd.Series([5, 5, 9, 9, 9, 2])
    fold = effects.folds_by_group(groups, folds=3, seed=0)
    assert fold[0] == fold[1] and fold[2] == fold[3] == fold[4]


def test_rare_levels_are_pooled() -> None:
    frame = table([1] * 30, [1] * 30)
    frame.loc[:4, "niche"] = "Physics"
    pooled = effects.design(frame.drop(columns="log_exposure"), min_level=20)
    assert set(pooled["niche"]) == {"Yoga", "other"}


def test_too_few_products_on_a_side_is_a_note_not_an_error() -> None:
    frame = table([3] * 5, [1] * 40).assign(later_early_sale_affiliate=False)
    result = effects.estimate_effect(frame, seed=0)
    assert result.estimates == [] and "each side needs 10" in result.note


def planted_products(n: int, effect: float, seed: int) -> pd.DataFrame:
    """Products whose niche raises both the chance of a programme and the sales; a programme
    multiplies expected sales by exp(effect) and shows in the first sale with probability
    s = 0.5, and in a later early sale of most programme products that sell enough."""
    rng = np.random.default_rng(seed)
    niche = rng.choice(["a", "b", "c", "d"], n)
    level = pd.Series(niche).map({"a": -1.0, "b": 0.0, "c": 1.0, "d": 2.0}).to_numpy()
    programme = rng.uniform(size=n) < 1 / (1 + np.exp(-(level - 1.0)))
    days = rng.integers(30, 183, n)
    mu = days / 10 * np.exp(level + effect * programme + rng.normal(0, 0.7, n))
    sales = rng.poisson(mu)
    first_affiliate = programme & (rng.uniform(size=n) < 0.5)
    later = programme & (sales >= 9) & (rng.uniform(size=n) < 0.99)
    return pd.DataFrame(
        {
            effects.GROUP: rng.integers(0, n // 2, n),
            effects.OUTCOME: sales,
            effects.EXPOSURE: days,
            effects.TREATMENT: first_affiliate,
            "category": "eBook",
            "niche": niche,
            "first_sale_value": rng.lognormal(0, 0.5, n),
            "age_at_period_start_days": rng.integers(0, 1000, n),
            "producer_other_products": 0,
            "producer_other_units": 0,
            "later_early_sale_affiliate": later,
        }
    )


def test_a_planted_effect_is_recovered_and_the_unadjusted_ratio_is_not() -> None:
    result = effects.estimate_effect(planted_products(6000, effect=0.3, seed=4), seed=4)
    by_role = {e.role: e for e in result.estimates if e.role != "placebo"}
    for role in ("headline", "check"):
        assert by_role[role].ci_low < 0.3 < by_role[role].ci_high, by_role[role]
    # Without the correction the dilution by programme products sold first direct shows.
    assert by_role["uncorrected"].estimate < by_role["headline"].estimate
    # Programme products sit in the high-selling niches: unadjusted, the effect is overstated.
    assert by_role["naive"].ci_low > 0.3 + 0.3
    for placebo in (e for e in result.estimates if e.role == "placebo"):
        assert placebo.ci_low < 0 < placebo.ci_high, placebo
    assert result.sensitivity["affiliate_sale_share"] == pytest.approx(0.5, abs=0.05)
    assert result.overlap["share_trimmed"] < 0.05
    balance = result.balance.set_index("covariate")
    assert balance["smd_weighted"].abs().max() < balance["smd_raw"].abs().max()


def test_the_fits_free_their_copies_of_the_design_matrix() -> None:
    # statsmodels' default IRLS leaves two copies of the design matrix per iteration for
    # Python's cycle collector: the cross-fit's five GLMs peaked at 74 times the matrix
    # (the 16M-row run's driver at 11.5 GB); Fisher scoring with a collection after each
    # fit, at 17 times.
    frame = effects.design(planted_products(20000, effect=0.3, seed=4))
    prepared = effects.prepare(frame)
    alpha = effects.dispersion(frame, prepared)
    gc.collect()
    tracemalloc.start()
    try:
        effects.cross_fit(frame, effects.TREATMENT, alpha, 1, prepared)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * prepared.controls.nbytes


def test_an_interval_is_widened_to_the_placebo_spread_never_narrowed() -> None:
    # +-0.1 around 0.2 against a placebo sd of 0.1: +-0.196; against 0.01 it stays +-0.1.
    assert effects.widened((0.2, 0.1, 0.3), 0.1) == pytest.approx(
        (0.2, 0.2 - 0.196, 0.2 + 0.196), abs=1e-3
    )
    assert effects.widened((0.2, 0.1, 0.3), 0.01) == pytest.approx((0.2, 0.1, 0.3))


def test_the_written_tables_keep_every_estimate_and_balance_row(spark) -> None:
    result = effects.estimate_effect(planted_products(2000, effect=0.3, seed=5), seed=5)
    rows = [e.as_dict() for e in result.estimates]
    written = spark.createDataFrame(rows, effects.ESTIMATES_SCHEMA).collect()
    assert [r["role"] for r in written] == [e.role for e in result.estimates]
    assert written[0]["estimate"] == pytest.approx(result.estimates[0].estimate)
    balance = spark.createDataFrame(result.balance, effects.BALANCE_SCHEMA).toPandas()
    pd.testing.assert_frame_equal(balance, result.balance)


def test_the_effect_sample_takes_whole_producers_and_about_the_cap(spark) -> None:
    # 400 producers with 1 to 5 products each (producer i has 1 + i % 5): 1,200 products.
    rows = [(f"p{i}", f"p{i}-{j}") for i in range(400) for j in range(1 + i % 5)]
    table = spark.createDataFrame(rows, "producer_id string, product_id string")
    assert producer_sample(table, 1200, 1200, seed=7) is table
    sample = producer_sample(table, 1200, 300, seed=7).toPandas()
    per_producer = sample.groupby("producer_id").size()
    assert all(n == 1 + int(p[1:]) % 5 for p, n in per_producer.items())
    # A quarter of the producers (about 100 of 400, sd 8.7) with 3 products on average.
    assert 200 < len(sample) < 400
    again = producer_sample(table, 1200, 300, seed=7).toPandas()
    assert sorted(again["product_id"]) == sorted(sample["product_id"])
    other_seed = producer_sample(table, 1200, 300, seed=8).toPandas()
    assert sorted(other_seed["product_id"]) != sorted(sample["product_id"])
