"""Q4's effect estimate: what an affiliate programme does to a product's sales.

Estimand: for the products in the log, the ratio of a product's expected sales in the period
with an affiliate programme to its expected sales without one, per day on sale (reported
as a ratio and as a log ratio). Sales are counted after the product's first sale: a product
enters the log with its first sale, so its count of further sales is the outcome that no
product is selected on.

What the log shows of a programme is an affiliate sale. Read over all of a product's sales,
a programme is seen more often the more the product sells, which would let the outcome
decide the treatment. The treatment is therefore read from the first sale alone, which
every product has: `first_sale_affiliate`. A programme product's first sale is direct with
probability 1 - s (s: the share of a programme product's sales made by affiliates), so some
programme products sit among the controls. s is measured on the products with enough sales
to tell, and both estimators are corrected for that dilution (`corrected`). What the
correction assumes: s does not depend on the product's features or demand, and a product
without a programme never sells through an affiliate (the layout's business rule).

Estimators, each on every product (none is dropped for selling little):
- negative binomial quasi-likelihood (a log-link GLM with a fixed dispersion: consistent
  when the mean is right, whatever the distribution) with days on sale as the exposure and
  errors clustered by producer; the headline;
- augmented inverse propensity weighting, cross-fitted over producer folds, with the same
  GLM (the treatment on and off) as outcome model and a penalised logit propensity;
- the unadjusted ratio (no controls, no correction), to show what confounding does;
- both adjusted estimators again on a treatment shuffled within strata (a placebo that must
  give about 0; the GLM over 20 shuffles, whose spread floors every interval).
Overlap (propensity range, share trimmed), covariate balance before and after weighting
and the E-value of the headline come with them.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    DomainWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
    SingularMatrixWarning,
)

from hotmart_spark import warning_filters
from hotmart_spark.analysis.drivers import Z95, nan_to_none

OUTCOME = "sales_after_first"
EXPOSURE = "days_on_sale"
TREATMENT = "first_sale_affiliate"
GROUP = "producer_id"
# What the estimators need from the product table (marts/products).
COLUMNS = [
    GROUP,
    OUTCOME,
    EXPOSURE,
    TREATMENT,
    "category",
    "niche",
    "first_sale_value",
    "age_at_period_start_days",
    "producer_other_products",
    "producer_other_units",
]
# Controls, all fixed before the period's sales or read from the first sale: the producer's
# size and breadth without the product itself, what the product is, its price and age.
NUMERIC_CONTROLS = ["log_price", "age_years", "log_producer_products", "log_producer_other_units"]
CATEGORICAL_CONTROLS = ["category", "niche"]
# Levels with fewer products are pooled as "other": a fold's model must know every level it
# predicts for, and a level of a handful of products says nothing.
MIN_LEVEL_PRODUCTS = 20
# AIPW drops products whose propensity is this close to 0 or 1 (the estimate is then for the
# products where both arms are seen; the share dropped is reported).
PROPENSITY_TRIM = 0.01
FOLDS = 5
# Shuffles of the treatment within strata: the spread of the GLM's estimate over them is its
# sampling spread under no effect, which a sandwich error misses when a few products sell
# most of the units.
PLACEBO_SHUFFLES = 20
MIN_PRODUCTS_PER_ARM = 10

Interval = tuple[float, float, float]  # log ratio, 95% low, 95% high

ESTIMAND = (
    "the ratio of a product's expected sales in the period with an affiliate programme to "
    "its expected sales without one, per day on sale, counted after its first sale, for the "
    "products in the log"
)
# Column types of the written tables, so a run without estimates writes the same schema.
ESTIMATES_SCHEMA = (
    "treatment string, method string, role string, estimate double, ci_low double, "
    "ci_high double, units_change double, n_treated long, n_control long, note string"
)
BALANCE_SCHEMA = "covariate string, smd_raw double, smd_weighted double"


@dataclass(frozen=True)
class Estimate:
    method: str
    role: str  # headline, check, naive, uncorrected, placebo
    estimate: float
    ci_low: float
    ci_high: float
    n_treated: int
    n_control: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "treatment": "affiliate programme",
            "method": self.method,
            "role": self.role,
            "estimate": nan_to_none(self.estimate),
            "ci_low": nan_to_none(self.ci_low),
            "ci_high": nan_to_none(self.ci_high),
            # The estimate is a log ratio: exp(b) - 1 is the relative change in expected sales.
            "units_change": nan_to_none(math.expm1(self.estimate)),
            "n_treated": self.n_treated,
            "n_control": self.n_control,
            "note": self.note,
        }


def design(products: pd.DataFrame, min_level: int = MIN_LEVEL_PRODUCTS) -> pd.DataFrame:
    """The estimators' table: controls on the scale the models use, rare levels pooled."""
    frame = products[COLUMNS].copy()
    for level in CATEGORICAL_CONTROLS:
        counts = frame[level].value_counts()
        rare = counts.index[counts < min_level]
        frame[level] = frame[level].where(~frame[level].isin(rare), "other")
    frame[TREATMENT] = frame[TREATMENT].astype(int)
    frame[OUTCOME] = frame[OUTCOME].astype(float)
    frame["log_exposure"] = np.log(frame[EXPOSURE].astype(float))
    # Relative value units start at 0 (the floor price): log1p keeps the floor finite.
    frame["log_price"] = np.log1p(frame["first_sale_value"].clip(lower=0))
    frame["age_years"] = frame["age_at_period_start_days"].clip(lower=0) / 365.25
    frame["log_producer_products"] = np.log1p(frame["producer_other_products"])
    frame["log_producer_other_units"] = np.log1p(frame["producer_other_units"])
    return frame.reset_index(drop=True)


def controls(frame: pd.DataFrame) -> str:
    """The controls as a formula, without those constant over these products (one category,
    producers of one product each): they would only make the design singular."""
    terms = [f"C({c})" for c in CATEGORICAL_CONTROLS if frame[c].nunique() > 1]
    terms += [c for c in NUMERIC_CONTROLS if frame[c].nunique() > 1]
    return " + ".join(terms) or "1"


def nb_family(alpha: float) -> sm.families.Family:
    with warnings.catch_warnings():
        # statsmodels warns that a log link is not NB's canonical one: it is the one meant.
        warnings.simplefilter("ignore", DomainWarning)
        return sm.families.NegativeBinomial(alpha=alpha)


def fisher_scoring(model: sm.GLM, **options: Any) -> Any:
    """The GLM fitted by Fisher scoring (statsmodels' Newton optimiser on the expected
    information; after three IRLS steps to start from, unless given a start): the
    iterations of the default IRLS, whose every iteration leaves a weighted copy of the
    design matrix in a reference cycle that only Python's cycle collector frees. About 40 of
    them were alive at once, and the 16M-row run's driver peaked at 11.5 GB over 178,643
    products; the estimate on the demo's products now takes a tenth of that memory and half
    the CPU, to the same figures (docs/methods/q4-drivers.md, Scale). Newton's own observed
    information diverged on small planted logs. The collection after the fit frees the
    starting steps' copies before the next fit."""
    fitted = model.fit(method="newton", optim_hessian="eim", disp=False, **options)
    gc.collect(1)
    return fitted


@dataclass(frozen=True)
class Prepared:
    """What every GLM on one table of products shares (a placebo only changes the
    treatment): building the controls' design matrix took longer than a fit."""

    outcome: np.ndarray
    offset: np.ndarray
    groups: np.ndarray
    controls: np.ndarray  # intercept first


def prepare(frame: pd.DataFrame) -> Prepared:
    return Prepared(
        frame[OUTCOME].to_numpy(float),
        frame["log_exposure"].to_numpy(float),
        pd.factorize(frame[GROUP])[0],
        patsy.dmatrix(controls(frame), frame, return_type="dataframe").to_numpy(),
    )


def dispersion(frame: pd.DataFrame, prepared: Prepared) -> float:
    """The negative binomial alpha (Var = mu + alpha mu^2) by moments on a Poisson fit of
    sales on the controls and the treatment: the mean of ((y - mu)^2 - y) / mu^2 (Cameron and
    Trivedi's auxiliary regression without intercept), floored so the weights stay finite."""
    design_matrix = np.column_stack([prepared.controls, frame[TREATMENT].to_numpy(float)])
    fit = fisher_scoring(
        sm.GLM(
            prepared.outcome, design_matrix, family=sm.families.Poisson(), offset=prepared.offset
        )
    )
    mu, y = fit.fittedvalues, prepared.outcome
    alpha = float(np.sum(((y - mu) ** 2 - y) * mu**2) / np.sum(mu**4))
    return max(alpha, 1e-3)


def glm_fit(
    frame: pd.DataFrame,
    treatment: str,
    adjusted: bool,
    alpha: float,
    prepared: Prepared,
    start: np.ndarray | None = None,
) -> Any:
    """The negative binomial GLM (log link, exposure as offset, errors clustered by
    producer) of sales on the controls (or, adjusted False, an intercept) and the
    treatment, which is the last coefficient."""
    columns = prepared.controls if adjusted else prepared.controls[:, :1]
    design_matrix = np.column_stack([columns, frame[treatment].to_numpy(float)])
    return fisher_scoring(
        sm.GLM(prepared.outcome, design_matrix, family=nb_family(alpha), offset=prepared.offset),
        start_params=start,
        cov_type="cluster",
        cov_kwds={"groups": prepared.groups},
    )


def glm_effect(
    frame: pd.DataFrame,
    treatment: str,
    adjusted: bool,
    alpha: float,
    prepared: Prepared | None = None,
    start: np.ndarray | None = None,
) -> Interval:
    """Log ratio of expected sales per day on sale, treated over not (glm_fit)."""
    fit = glm_fit(frame, treatment, adjusted, alpha, prepared or prepare(frame), start)
    low, high = fit.conf_int(alpha=0.05)[-1]
    return float(fit.params[-1]), float(low), float(high)


@dataclass(frozen=True)
class Weighting:
    """Cross-fitted propensity and outcome predictions, per product."""

    propensity: np.ndarray
    mean_treated: np.ndarray  # expected sales with the treatment (exposure included)
    mean_control: np.ndarray
    kept: np.ndarray  # propensity within the trim bounds


def folds_by_group(groups: pd.Series, folds: int, seed: int) -> np.ndarray:
    """A fold per product, the same for every product of a producer: one producer's products
    share its unobserved appeal, so a model must not learn it from the product it predicts."""
    codes, uniques = pd.factorize(groups, sort=True)
    rng = np.random.default_rng(seed)
    return rng.integers(0, folds, size=len(uniques))[codes]


def cross_fit(
    frame: pd.DataFrame, treatment: str, alpha: float, seed: int, prepared: Prepared
) -> Weighting:
    """Each fold's propensity and outcome means from models fitted on the other folds.

    The propensity is an L2-penalised logit (scikit-learn): a niche without a treated product
    in the training folds would drive an unpenalised one to separation. The outcome model is
    one negative binomial GLM with the treatment as a regressor, predicted with it on and off,
    so an arm with few products in a niche borrows the controls' coefficients from the other.
    """
    fold = folds_by_group(frame[GROUP], FOLDS, seed)
    design_matrix = prepared.controls
    t = frame[treatment].to_numpy(float)
    y, offset = prepared.outcome, prepared.offset
    # Without the intercept column; a formula of no controls leaves one constant column.
    scaled = StandardScaler().fit_transform(
        design_matrix[:, 1:] if design_matrix.shape[1] > 1 else design_matrix
    )
    propensity = np.empty(len(frame))
    means = {1: np.empty(len(frame)), 0: np.empty(len(frame))}
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        if not test.any():
            continue
        logit = LogisticRegression(C=1.0, max_iter=2000).fit(scaled[train], t[train])
        propensity[test] = logit.predict_proba(scaled[test])[:, 1]
        fit = fisher_scoring(
            sm.GLM(
                y[train],
                np.column_stack([design_matrix[train], t[train]]),
                family=nb_family(alpha),
                offset=offset[train],
            )
        )
        for arm in (1, 0):
            design_arm = np.column_stack([design_matrix[test], np.full(test.sum(), float(arm))])
            means[arm][test] = fit.predict(design_arm, offset=offset[test])
    kept = (propensity >= PROPENSITY_TRIM) & (propensity <= 1 - PROPENSITY_TRIM)
    return Weighting(propensity, means[1], means[0], kept)


def aipw_effect(frame: pd.DataFrame, treatment: str, weighting: Weighting) -> Interval:
    """Log of E[Y(1)] / E[Y(0)] by augmented IPW on the products kept, with a variance from
    the influence function summed within producers."""
    keep = weighting.kept
    y = frame[OUTCOME].to_numpy()[keep]
    t = frame[treatment].to_numpy()[keep]
    e = weighting.propensity[keep]
    m1, m0 = weighting.mean_treated[keep], weighting.mean_control[keep]
    phi1 = m1 + t * (y - m1) / e
    phi0 = m0 + (1 - t) * (y - m0) / (1 - e)
    psi1, psi0 = phi1.mean(), phi0.mean()
    if psi1 <= 0 or psi0 <= 0:
        raise ValueError("an arm's expected sales came out not positive")
    influence = (phi1 - psi1) / psi1 - (phi0 - psi0) / psi0
    by_producer = pd.Series(influence).groupby(frame[GROUP].to_numpy()[keep]).sum()
    n = len(influence)
    se = math.sqrt(float((by_producer**2).sum())) / n
    estimate = math.log(psi1 / psi0)
    return estimate, estimate - Z95 * se, estimate + Z95 * se


def balance(frame: pd.DataFrame, treatment: str, weighting: Weighting) -> pd.DataFrame:
    """Standardised mean difference of each numeric control and each level's share, treated
    minus control, before and after inverse propensity weighting (on the products kept)."""
    keep = weighting.kept
    data = frame[keep]
    t = data[treatment].to_numpy() == 1
    e = weighting.propensity[keep]
    w = np.where(t, 1 / e, 1 / (1 - e))
    columns = {c: data[c].to_numpy(float) for c in NUMERIC_CONTROLS}
    for level in CATEGORICAL_CONTROLS:
        for value in sorted(data[level].unique()):
            columns[f"{level}={value}"] = (data[level] == value).to_numpy(float)
    rows = []
    for name, x in columns.items():
        pooled_sd = math.sqrt((x[t].var() + x[~t].var()) / 2) or 1.0
        raw = (x[t].mean() - x[~t].mean()) / pooled_sd
        weighted = (np.average(x[t], weights=w[t]) - np.average(x[~t], weights=w[~t])) / pooled_sd
        rows.append({"covariate": name, "smd_raw": float(raw), "smd_weighted": float(weighted)})
    return pd.DataFrame(rows)


def affiliate_sale_share(products: pd.DataFrame) -> tuple[float, int]:
    """s, the share of a programme product's sales made through affiliates, read where the
    programme can be told: products with a full run of early sales, an affiliate sale among
    sales 2 to `early_sales` (so almost surely in a programme whatever s), and the share of
    those whose first sale went through an affiliate. Returns (s, products used)."""
    known = products[products["later_early_sale_affiliate"].astype(bool)]
    if known.empty:
        return float("nan"), 0
    return float(known[TREATMENT].astype(float).mean()), len(known)


def dilution(frame: pd.DataFrame, weighting: Weighting, s: float) -> float:
    """q: the share of programme products among those whose first sale was direct, weighted
    by expected sales without the programme. A product with treatment propensity e has a
    programme with probability e / s; its first sale is direct with probability 1 - e, and
    a programme product's with probability (1 - s) e / s."""
    e = np.clip(weighting.propensity, 0, s * (1 - 1e-9))
    programme_given_direct = (e / s) * (1 - s) / (1 - e)
    m0 = weighting.mean_control
    return float(np.sum(m0 * programme_given_direct) / np.sum(m0))


def undiluted(log_ratio: float, q: float) -> float:
    """The programme's log ratio from the one measured against controls that hold a share q
    of programme products: observed R = P / (1 + q (P - 1)), so P = R (1 - q) / (1 - R q)."""
    r = math.exp(log_ratio)
    if r * q >= 1:
        return math.inf
    return math.log(r * (1 - q) / (1 - r * q))


def widened(interval: Interval, sd: float) -> Interval:
    """The interval around the same estimate, at least as wide as +-1.96 sd."""
    estimate, low, high = interval
    half = max((high - low) / 2, Z95 * sd)
    return estimate, estimate - half, estimate + half


def corrected(interval: Interval, q_range: tuple[float, float]) -> Interval:
    """An interval corrected for dilution, widened over the plausible range of q."""
    estimate, low, high = interval
    q_mid = sum(q_range) / 2
    lows = [undiluted(low, q) for q in q_range]
    highs = [undiluted(high, q) for q in q_range]
    return undiluted(estimate, q_mid), min(lows), max(highs)


def e_value(log_ratio: float, bound_nearest_null: float) -> tuple[float, float]:
    """E-values (VanderWeele and Ding 2017) of a ratio and of its interval's bound nearest 1:
    how strongly an unmeasured confounder would have to be tied to both treatment and outcome
    (as a risk ratio) to explain the estimate, or to move its interval to cover 1."""

    def of(rr: float) -> float:
        rr = rr if rr >= 1 else 1 / rr
        return rr + math.sqrt(rr * (rr - 1))

    point = of(math.exp(log_ratio))
    crosses = (bound_nearest_null <= 0) == (log_ratio >= 0) or bound_nearest_null == 0
    return point, 1.0 if crosses else of(math.exp(bound_nearest_null))


def shuffled_within_strata(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The treatment permuted within category x niche: any association with sales beyond
    what the strata carry is gone, so an estimator must give about 0."""
    rng = np.random.default_rng(seed)
    strata = frame.groupby(CATEGORICAL_CONTROLS).ngroup().to_numpy()
    # Rows grouped by stratum twice: in their own order (the places) and in a random order
    # (the values); each stratum's places get a permutation of its own values.
    places = np.lexsort((np.arange(len(frame)), strata))
    values = np.lexsort((rng.random(len(frame)), strata))
    treatment = frame[TREATMENT].to_numpy()
    shuffled = treatment.copy()
    shuffled[places] = treatment[values]
    return frame.assign(**{TREATMENT: shuffled})


UNRELIABLE_FIT = (ConvergenceWarning, PerfectSeparationWarning, SingularMatrixWarning)
ESTIMATION_ERRORS = (
    ValueError,
    ZeroDivisionError,
    OverflowError,
    np.linalg.LinAlgError,
    PerfectSeparationError,
    *UNRELIABLE_FIT,
)


def guarded(compute: Callable[[], Any]) -> tuple[Any, str]:
    """compute()'s result, or (None, why) when the products cannot support the fit."""
    try:
        with warning_filters.catch_warnings():
            for category in UNRELIABLE_FIT:
                warnings.simplefilter("error", category)
            warnings.simplefilter("ignore", RuntimeWarning)
            return compute(), ""
    except ESTIMATION_ERRORS as exc:
        return None, f"{type(exc).__name__}: {exc}"


@dataclass
class Result:
    estimates: list[Estimate]
    overlap: dict[str, Any] = field(default_factory=dict)
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    sensitivity: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def headline(self) -> Estimate | None:
        return next((e for e in self.estimates if e.role == "headline"), None)


NAN = float("nan")


def estimate_effect(products: pd.DataFrame, seed: int) -> Result:
    """Every estimate of the programme's effect, with overlap, balance and sensitivity.
    products: the product table's COLUMNS plus later_early_sale_affiliate."""
    frame = design(products)
    treated = int(frame[TREATMENT].sum())
    control = len(frame) - treated
    if min(treated, control) < MIN_PRODUCTS_PER_ARM:
        return Result(
            [],
            note=(
                f"not estimable: {treated} products sold first through an affiliate and "
                f"{control} direct; each side needs {MIN_PRODUCTS_PER_ARM}"
            ),
        )
    s, s_products = affiliate_sale_share(products)
    if not s_products or not 0 < s <= 1:
        return Result([], note="not estimable: no product shows its affiliate share of sales")
    s_se = math.sqrt(s * (1 - s) / s_products)
    s_range = (max(s - Z95 * s_se, 1e-3), min(s + Z95 * s_se, 1.0))

    prepared = prepare(frame)
    alpha, why = guarded(lambda: dispersion(frame, prepared))
    if alpha is None:
        return Result([], note=f"not estimable on these {len(frame)} products: {why}")
    weighting, why = guarded(lambda: cross_fit(frame, TREATMENT, alpha, seed, prepared))
    if weighting is None:
        return Result([], note=f"not estimable on these {len(frame)} products: {why}")
    q_range = tuple(sorted(dilution(frame, weighting, x) for x in s_range))

    # The AIPW placebo's table; the GLM's shuffles are made one at a time as they are fitted
    # (the 20 copies of the table at once were most of what the estimate held in memory).
    first_shuffle = shuffled_within_strata(frame, seed)

    def shuffled(r: int) -> pd.DataFrame:
        return first_shuffle if r == 0 else shuffled_within_strata(frame, seed + r)

    fitted, fit_failure = guarded(lambda: glm_fit(frame, TREATMENT, True, alpha, prepared))

    def adjusted() -> Interval:
        if fitted is None:
            raise ValueError(fit_failure)
        low, high = fitted.conf_int(alpha=0.05)[-1]
        return float(fitted.params[-1]), float(low), float(high)

    # Each placebo fit starts from the real one with no effect: a few iterations, not a dozen.
    start = None if fitted is None else np.append(fitted.params[:-1], 0.0)
    placebo_fits = [
        guarded(lambda r=r: glm_effect(shuffled(r), TREATMENT, True, alpha, prepared, start))[0]
        for r in range(PLACEBO_SHUFFLES)
    ]
    placebo_estimates = np.array([f[0] for f in placebo_fits if f is not None])
    placebo_sd = float(placebo_estimates.std(ddof=1)) if len(placebo_estimates) > 2 else 0.0

    def one(method: str, role: str, compute: Callable[[], Interval], fix: bool) -> Estimate:
        interval, why = guarded(compute)
        if interval is None:
            return Estimate(method, role, NAN, NAN, NAN, treated, control, why)
        # No interval is narrower than what chance alone moves an estimate by here.
        interval = widened(interval, placebo_sd)
        if fix:
            interval = corrected(interval, q_range)
        return Estimate(method, role, *interval, treated, control)

    estimates = [
        one(
            "negative binomial GLM with controls, producer-clustered errors",
            "headline",
            adjusted,
            fix=True,
        ),
        one(
            "augmented IPW, cross-fitted by producer",
            "check",
            lambda: aipw_effect(frame, TREATMENT, weighting),
            fix=True,
        ),
        # What a direct comparison reports: no controls, no correction.
        one(
            "unadjusted ratio (no controls, not corrected)",
            "naive",
            lambda: glm_effect(frame, TREATMENT, False, alpha, prepared),
            fix=False,
        ),
        one(
            "first sale through an affiliate, not corrected for dilution",
            "uncorrected",
            adjusted,
            fix=False,
        ),
    ]
    if len(placebo_estimates):
        centre = float(placebo_estimates.mean())
        estimates.append(
            Estimate(
                f"placebo: GLM on the treatment shuffled within category x niche, mean of "
                f"{len(placebo_estimates)} shuffles",
                "placebo",
                centre,
                centre - Z95 * placebo_sd,
                centre + Z95 * placebo_sd,
                treated,
                control,
            )
        )
    placebo_weighting, why = guarded(
        lambda: cross_fit(first_shuffle, TREATMENT, alpha, seed, prepared)
    )
    if placebo_weighting is not None:
        estimates.append(
            one(
                "placebo: AIPW on the treatment shuffled within category x niche",
                "placebo",
                lambda: aipw_effect(first_shuffle, TREATMENT, placebo_weighting),
                fix=False,
            )
        )
    sandwich_misses = [not (f[1] <= 0 <= f[2]) for f in placebo_fits if f is not None]
    headline = estimates[0]
    sensitivity: dict[str, Any] = {
        "affiliate_sale_share": s,
        "affiliate_sale_share_products": s_products,
        "dilution": sum(q_range) / 2,
        "dilution_range": list(q_range),
        "dispersion_alpha": alpha,
        "placebo_shuffles": len(placebo_estimates),
        "placebo_sd": placebo_sd,
        # How often the GLM's own (sandwich) interval excluded 0 on a shuffled treatment:
        # about 5% when its errors are right; more says they are too small.
        "placebo_sandwich_miss_share": float(np.mean(sandwich_misses)) if sandwich_misses else None,
    }
    if not math.isnan(headline.estimate):
        nearest = headline.ci_low if headline.estimate >= 0 else headline.ci_high
        point, bound = e_value(headline.estimate, nearest)
        sensitivity.update(e_value=point, e_value_interval=bound)
    kept = weighting.kept
    overlap = {
        "propensity_min": float(weighting.propensity.min()),
        "propensity_max": float(weighting.propensity.max()),
        "trim": PROPENSITY_TRIM,
        "share_trimmed": float(1 - kept.mean()),
        "products": len(frame),
        "folds": FOLDS,
    }
    return Result(estimates, overlap, balance(frame, TREATMENT, weighting), sensitivity)
