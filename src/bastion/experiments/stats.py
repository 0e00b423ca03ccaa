"""Statistics for A/B tests of competing LLM variants: pure functions over numpy arrays.

Arm A is the control, arm B the challenger; every effect is ``mean_b - mean_a`` in the
metric's own units (a rate difference for binary metrics such as thumbs-up or error rate, a
difference of means for continuous ones such as rating, latency, tokens or cost).

* Fixed-horizon tests (`two_proportions`, `welch`, `mann_whitney`): valid only when read once,
  at a sample size fixed in advance.
* Always-valid inference (`sequential`): a mixture sequential probability ratio test and the
  confidence sequence it inverts into, safe to read after every observation (admins peek).
* `cuped` variance reduction, `holm` for several arms, sample-size and power calculators,
  `decide` / `guardrail_breached` for verdicts, and `simulate` to measure all of it.

Nothing here does I/O; randomness only in `simulate`, driven by its seed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

FloatArray = NDArray[np.float64]

DEFAULT_TAU = 0.1
"""Default mixing scale of `sequential`, in standard-deviation units of the pooled metric.

The confidence sequence is narrowest near ``n_eff * tau**2 ~ 8`` (``n_eff = n_a*n_b/(n_a+n_b)``),
i.e. around 1,600 observations per arm for tau = 0.1, and within about 7% of that optimum from
roughly 600 to 6,000 per arm, which is where LLM A/B tests on per-conversation feedback live.
Choosing tau close to the standardised effect you hope to detect (``mde / sd``) is the rule of
Johari et al. (2022, sec. 4); `tau_for` computes it."""

HORIZON_INFLATION = 2.0
"""Cap a sequential experiment at this multiple of the fixed-horizon sample size.

Peeking safely costs width: reading `sequential` every 10 observations per arm with
``tau = tau_for(mde, sd)`` and stopping at the first rejection, a horizon of 2 x the
calculator's n (alpha 0.05, power 0.8) gave 0.86-0.89 power in `simulate` (0.3 -> 0.36,
0.10 -> 0.12, and 0.1 or 0.3 SD on normal data; 1.75 x gave 0.81-0.83), while the average
experiment stopped after about 1.0-1.15 x the fixed-horizon n."""

MAX_LOOKS = 100_000
"""`sequential` evaluates at most this many evenly spaced prefixes of the history."""

Verdict = Literal["ship_b", "keep_a", "keep_running"]


@dataclass(frozen=True)
class TestResult:
    """A fixed-horizon test: effect of B over A, its (1 - alpha) CI, p-value, p <= alpha."""

    __test__ = False  # not a pytest class

    name: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid result: read it at any time, as often as you like.

    `p_value` is the running minimum of the always-valid p-value over the history and
    (`ci_low`, `ci_high`) the running intersection of the confidence sequence, so once
    `significant` it stays so. `effect` is the current ``mean_b - mean_a``; `sd` the pooled
    standard deviation of both arms together (ddof=1) the boundary was scaled with.
    Bounds are +-inf while there is not yet enough data (fewer than 3 observations, or none
    that differ); `json.dumps` writes those as ``Infinity``.
    """

    name: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    alpha: float
    tau: float
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd: float


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    more_samples: int | None  # per arm, only for "keep_running"; None when not estimable


# --------------------------------------------------------------------------- validation


def _sample(x: ArrayLike, name: str, min_size: int = 1) -> FloatArray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a sequence of numbers: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_size:
        if arr.size == 0:
            raise ValueError(f"{name} is empty: each arm needs at least {min_size} observation(s)")
        raise ValueError(f"{name} has {arr.size} observation(s); this test needs {min_size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _open_unit(value: float, name: str) -> float:
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _count(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or int(value) != value:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {v}")
    return v


def _z(q: float) -> float:
    return float(sps.norm.ppf(q))


# --------------------------------------------------------------------------- fixed horizon


def two_proportions(
    success_a: int, n_a: int, success_b: int, n_b: int, alpha: float = 0.05
) -> TestResult:
    """Two-sided pooled z-test for ``p_b - p_a`` (the chi-square test without continuity
    correction). The p-value uses the pooled SE ``sqrt(p(1-p)(1/n_a + 1/n_b))``, as the null
    has one common rate; the CI is the Wald interval with the unpooled SE, so in rare borderline
    cases the two can disagree (the p-value decides `significant`)."""
    n_a = _count(n_a, "n_a", 1)
    n_b = _count(n_b, "n_b", 1)
    success_a = _count(success_a, "success_a")
    success_b = _count(success_b, "success_b")
    if success_a > n_a or success_b > n_b:
        raise ValueError("successes cannot exceed the number of trials in their arm")
    alpha = _open_unit(alpha, "alpha")
    pa, pb = success_a / n_a, success_b / n_b
    effect = pb - pa
    pooled = (success_a + success_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    p_value = float(2 * sps.norm.sf(abs(effect) / se0)) if se0 > 0 else 1.0
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    half = _z(1 - alpha / 2) * se
    return TestResult(
        "two_proportions", effect, effect - half, effect + half, p_value, bool(p_value <= alpha)
    )


def welch(x_a: ArrayLike, x_b: ArrayLike, alpha: float = 0.05) -> TestResult:
    """Welch's unequal-variance t-test of ``mean_b - mean_a`` with its t-based CI (scipy)."""
    a = _sample(x_a, "x_a", 2)
    b = _sample(x_b, "x_b", 2)
    alpha = _open_unit(alpha, "alpha")
    effect = float(b.mean() - a.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no variance at all: the t statistic is undefined
        p_same = 1.0 if effect == 0 else 0.0
        return TestResult("welch", effect, effect, effect, p_same, effect != 0)
    res = sps.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(1 - alpha)
    p_value = float(res.pvalue)
    return TestResult(
        "welch", effect, float(ci.low), float(ci.high), p_value, bool(p_value <= alpha)
    )


def mann_whitney(x_a: ArrayLike, x_b: ArrayLike, alpha: float = 0.05) -> TestResult:
    """Two-sided Mann-Whitney U test (scipy, tie-corrected). `effect` is the rank-biserial
    correlation ``2*AUC - 1`` with ``AUC = P(B > A) + P(B = A)/2``: 0 means no shift, +1 means
    every B observation beats every A one. Its CI is the normal interval on the AUC with the
    DeLong et al. (1988) placement-value variance, mapped to the same scale."""
    a = _sample(x_a, "x_a")
    b = _sample(x_b, "x_b")
    alpha = _open_unit(alpha, "alpha")
    n_a, n_b = a.size, b.size
    res = sps.mannwhitneyu(b, a, alternative="two-sided")
    auc = float(res.statistic) / (n_a * n_b)
    sa, sb = np.sort(a), np.sort(b)
    # Placement values: how much of the other arm each observation beats (ties count half).
    v_b = (np.searchsorted(sa, b, "left") + np.searchsorted(sa, b, "right")) / (2 * n_a)
    v_a = 1 - (np.searchsorted(sb, a, "left") + np.searchsorted(sb, a, "right")) / (2 * n_b)
    var_b = float(v_b.var(ddof=1)) if n_b > 1 else 0.0
    var_a = float(v_a.var(ddof=1)) if n_a > 1 else 0.0
    half = _z(1 - alpha / 2) * math.sqrt(var_b / n_b + var_a / n_a)
    lo, hi = max(0.0, auc - half), min(1.0, auc + half)
    p_value = float(res.pvalue) if math.isfinite(float(res.pvalue)) else 1.0
    return TestResult(
        "mann_whitney", 2 * auc - 1, 2 * lo - 1, 2 * hi - 1, p_value, bool(p_value <= alpha)
    )


# --------------------------------------------------------------------------- sequential


def tau_for(mde: float, sd: float) -> float:
    """The mixing scale that puts the mixture's power where the experiment needs it:
    the minimum detectable effect in pooled-SD units (Johari et al. 2022, sec. 4)."""
    return _positive(abs(mde), "mde") / _positive(sd, "sd")


def _log_mixture_lr(z2: FloatArray, n_eff: FloatArray, tau: float) -> FloatArray:
    r = n_eff * tau * tau
    out: FloatArray = -0.5 * np.log1p(r) + 0.5 * z2 * r / (1.0 + r)
    return out


def _std_half_width(n_eff: FloatArray, tau: float, alpha: float) -> FloatArray:
    r = n_eff * tau * tau
    out: FloatArray = np.sqrt(
        2.0 * (1.0 + r) / (n_eff * r) * (math.log(1.0 / alpha) + 0.5 * np.log1p(r))
    )
    return out


def _check_tau(tau: float | None) -> float:
    return DEFAULT_TAU if tau is None else _positive(tau, "tau")


def sequential(
    x_a: ArrayLike, x_b: ArrayLike, alpha: float = 0.05, tau: float | None = None
) -> SequentialResult:
    """Always-valid test and confidence sequence for ``mean_b - mean_a``.

    Method: the two-sample normal-mixture SPRT (mSPRT) of Johari, Koomen, Pekelis & Walsh,
    "Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research, 2022),
    equivalently the normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon,
    "Time-uniform, nonparametric, nonasymptotic confidence sequences" (Ann. Stat. 2021), with a
    plug-in variance as in Waudby-Smith et al., "Time-uniform central limit theory and
    asymptotic confidence sequences" (2021). With ``d`` the difference of means, ``s`` the
    running pooled SD of both arms' observations together (under the null the arms share their
    distribution; under an alternative this only widens the bound), ``n_eff = n_a n_b/(n_a+n_b)``,
    ``z = d sqrt(n_eff)/s`` and ``r = n_eff tau**2`` (mixing the standardised effect over
    N(0, tau**2)), the mixture likelihood ratio is::

        log L = -log(1 + r)/2 + z**2 r / (2 (1 + r))

    The p-value is ``min(1, 1/L)`` minimised over the history; the confidence sequence is
    ``d +- s sqrt(2 (1 + r) / (n_eff r) * (log(1/alpha) + log(1 + r)/2))`` intersected over
    the history. By Ville's inequality ``P(sup_t L_t >= 1/alpha) <= alpha`` under the null,
    so `significant` (p <= alpha, equivalently 0 outside the CI) holds its type-I error at any
    stopping time, whatever the peeking. Exact for Gaussian data with known variance,
    asymptotic otherwise; `simulate` measures it on binary and normal data.

    Works on binary (0/1) and continuous metrics alike. Each array holds an arm's observations
    in arrival order; the history is rebuilt from prefixes that grow in proportion
    (``floor(k n_a / K)``, ``floor(k n_b / K)``), as under randomised allocation, at most
    `MAX_LOOKS` of them. `tau` is in pooled-SD units (default `DEFAULT_TAU`).
    """
    a = _sample(x_a, "x_a")
    b = _sample(x_b, "x_b")
    alpha = _open_unit(alpha, "alpha")
    tau_ = _check_tau(tau)
    n_a, n_b = a.size, b.size
    mean_a, mean_b = float(a.mean()), float(b.mean())
    effect = mean_b - mean_a
    both = np.concatenate([a, b])
    sd_now = float(both.std(ddof=1)) if both.size > 1 else 0.0

    shift = float(both.mean())  # centring keeps the running sums of squares accurate
    ca, cb = a - shift, b - shift
    sum_a = np.concatenate([[0.0], np.cumsum(ca)])
    sum_b = np.concatenate([[0.0], np.cumsum(cb)])
    sq_a = np.concatenate([[0.0], np.cumsum(ca * ca)])
    sq_b = np.concatenate([[0.0], np.cumsum(cb * cb)])
    horizon = max(n_a, n_b)
    steps = np.unique(np.linspace(1, horizon, min(horizon, MAX_LOOKS)).round().astype(np.int64))
    ia = steps * n_a // horizon
    ib = steps * n_b // horizon
    keep = (ia >= 1) & (ib >= 1) & (ia + ib >= 3)
    ia, ib = ia[keep], ib[keep]
    n = (ia + ib).astype(np.float64)
    s = sum_a[ia] + sum_b[ib]
    var = np.maximum((sq_a[ia] + sq_b[ib] - s * s / n) / (n - 1), 0.0)
    scale = float(np.mean((both - shift) ** 2))
    informative = var > 1e-12 * scale if scale > 0 else np.zeros(var.shape, dtype=bool)

    p_value, lo, hi = 1.0, -math.inf, math.inf
    if informative.any():
        ia, ib, n, var = ia[informative], ib[informative], n[informative], var[informative]
        d = sum_b[ib] / ib - sum_a[ia] / ia
        n_eff = ia * ib / n
        log_lr = _log_mixture_lr(d * d * n_eff / var, n_eff, tau_)
        p_value = float(min(1.0, math.exp(-float(log_lr.max()))))
        half = np.sqrt(var) * _std_half_width(n_eff, tau_, alpha)
        lo, hi = float((d - half).max()), float((d + half).min())
        if lo > hi:  # can only happen if the data are not stationary (or with prob. <= alpha)
            lo, hi = float(d[-1] - half[-1]), float(d[-1] + half[-1])
    return SequentialResult(
        name="mixture_sprt",
        effect=effect,
        ci_low=lo,
        ci_high=hi,
        p_value=p_value,
        significant=p_value <= alpha,
        alpha=alpha,
        tau=tau_,
        n_a=n_a,
        n_b=n_b,
        mean_a=mean_a,
        mean_b=mean_b,
        sd=sd_now,
    )


# --------------------------------------------------------------------------- CUPED


def cuped(y: ArrayLike, covariate: ArrayLike) -> FloatArray:
    """CUPED (Deng, Xu, Kohavi & Walker, "Improving the Sensitivity of Online Controlled
    Experiments by Utilizing Pre-Experiment Data", WSDM 2013): ``y - theta (x - mean(x))`` with
    ``theta = cov(y, x) / var(x)``. The mean is unchanged; the variance shrinks by the factor
    ``1 - corr(y, x)**2``.

    Pass both arms pooled (`cuped_arms` does it) so theta and mean(x) are shared and the
    difference between arms stays unbiased. The covariate must not be affected by the
    treatment: measure it before assignment (e.g. the user's rate in the previous period).
    A constant covariate gives theta = 0 (y unchanged). Using theta from all the data at every
    look of `sequential` is a small look-ahead that vanishes as n grows."""
    yy = _sample(y, "y")
    xx = _sample(covariate, "covariate")
    if xx.size != yy.size:
        raise ValueError(f"y has {yy.size} values but covariate has {xx.size}")
    xc = xx - xx.mean()
    var_x = float(np.dot(xc, xc))
    theta = float(np.dot(yy - yy.mean(), xc)) / var_x if var_x > 0 else 0.0
    out: FloatArray = yy - theta * xc
    return out


def cuped_arms(
    y_a: ArrayLike, x_a: ArrayLike, y_b: ArrayLike, x_b: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """`cuped` with theta and the covariate mean estimated on both arms pooled."""
    ya, yb = _sample(y_a, "y_a"), _sample(y_b, "y_b")
    xa, xb = _sample(x_a, "x_a"), _sample(x_b, "x_b")
    if xa.size != ya.size or xb.size != yb.size:
        raise ValueError("each arm needs one covariate value per observation")
    adjusted = cuped(np.concatenate([ya, yb]), np.concatenate([xa, xb]))
    return adjusted[: ya.size], adjusted[ya.size :]


# --------------------------------------------------------------------------- several arms


def holm(p_values: ArrayLike) -> FloatArray:
    """Holm (1979) step-down adjusted p-values, in the input order: reject hypothesis i at
    family-wise level alpha when ``adjusted[i] <= alpha``. Valid under any dependence, so it
    applies to the k-1 comparisons of treatment arms against one control, and to always-valid
    p-values read at any stopping time."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional, got shape {p.shape}")
    if p.size and not (np.all(np.isfinite(p)) and p.min() >= 0 and p.max() <= 1):
        raise ValueError("p_values must lie between 0 and 1")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out: FloatArray = np.empty(m, dtype=np.float64)
    out[order] = stepped
    return out


# --------------------------------------------------------------------------- sample size


def _two_rates(p_base: float, mde: float) -> tuple[float, float]:
    p1 = _open_unit(p_base, "p_base")
    if not (math.isfinite(mde) and mde != 0):
        raise ValueError(f"mde must be a non-zero finite difference of rates, got {mde!r}")
    p2 = _open_unit(p1 + mde, "p_base + mde")
    return p1, p2


def sample_size_proportions(
    p_base: float, mde: float, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Observations per arm for a two-sided pooled z-test to detect ``p_base -> p_base + mde``
    (absolute difference) with the given power (Fleiss, Levin & Paik, "Statistical Methods
    for Rates and Proportions", eq. 4.14, without continuity correction)::

        n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))**2 / mde**2

    e.g. 0.10 -> 0.12 at alpha 0.05, power 0.8 needs 3,841 per arm."""
    p1, p2 = _two_rates(p_base, mde)
    alpha, power = _open_unit(alpha, "alpha"), _open_unit(power, "power")
    pbar = (p1 + p2) / 2
    num = _z(1 - alpha / 2) * math.sqrt(2 * pbar * (1 - pbar)) + _z(power) * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil((num / (p2 - p1)) ** 2 - 1e-9)


def power_proportions(p_base: float, mde: float, n_per_arm: int, alpha: float = 0.05) -> float:
    """Power of the two-sided pooled z-test with `n_per_arm` per arm (inverse of
    `sample_size_proportions`, both rejection tails counted)."""
    p1, p2 = _two_rates(p_base, mde)
    n = _count(n_per_arm, "n_per_arm", 1)
    alpha = _open_unit(alpha, "alpha")
    pbar = (p1 + p2) / 2
    null_sd = math.sqrt(2 * pbar * (1 - pbar))
    alt_sd = math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    shift = abs(p2 - p1) * math.sqrt(n)
    z = _z(1 - alpha / 2)
    return float(
        sps.norm.cdf((shift - z * null_sd) / alt_sd) + sps.norm.cdf((-shift - z * null_sd) / alt_sd)
    )


def sample_size_means(sd: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Observations per arm for a two-sided z-test of means with common SD `sd` to detect an
    absolute difference `mde`: ``n = 2 (z_{1-alpha/2} + z_{power})**2 sd**2 / mde**2``
    (normal approximation; add a couple of observations for the t-test at n < 30)."""
    sd_, mde_ = _positive(sd, "sd"), _positive(abs(mde), "mde")
    alpha, power = _open_unit(alpha, "alpha"), _open_unit(power, "power")
    n = 2 * ((_z(1 - alpha / 2) + _z(power)) * sd_ / mde_) ** 2
    return math.ceil(n - 1e-9)


def power_means(sd: float, mde: float, n_per_arm: int, alpha: float = 0.05) -> float:
    """Power of the two-sided z-test of means (inverse of `sample_size_means`)."""
    sd_, mde_ = _positive(sd, "sd"), _positive(abs(mde), "mde")
    n = _count(n_per_arm, "n_per_arm", 1)
    alpha = _open_unit(alpha, "alpha")
    shift = mde_ / (sd_ * math.sqrt(2 / n))
    z = _z(1 - alpha / 2)
    return float(sps.norm.cdf(shift - z) + sps.norm.cdf(-shift - z))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion."""
    n = _count(trials, "trials", 1)
    k = _count(successes, "successes")
    if k > n:
        raise ValueError("successes cannot exceed trials")
    z = _z(0.5 + _open_unit(confidence, "confidence") / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


# --------------------------------------------------------------------------- decisions


def _n_for(target: float, sd: float, tau: float, alpha: float, z_power: float) -> int | None:
    """Smallest per-arm n (balanced arms) with ``sd (w(n) + z_power sqrt(2/n)) <= target``,
    where w is the standardised half-width of the confidence sequence."""

    def ok(n: int) -> bool:
        n_eff = np.array([n / 2.0])
        width = float(_std_half_width(n_eff, tau, alpha)[0]) + z_power * math.sqrt(2.0 / n)
        return sd * width <= target

    hi = 2
    while not ok(hi):
        hi *= 2
        if hi > 10**13:
            return None
    lo = hi // 2
    while lo + 1 < hi:  # invariant: not ok(lo) or lo == 1, ok(hi)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def decide(
    result: SequentialResult, mde: float, *, higher_is_better: bool = True, power: float = 0.8
) -> Decision:
    """Verdict from a `sequential` result, safe to call at every look.

    `mde` is the experiment's declared minimum detectable (worthwhile) improvement, positive,
    in metric units; `higher_is_better=False` for metrics where lower wins (latency, cost,
    error rate), in which case "improvement" means B lower than A. With the CI expressed as
    improvement of B over A:

    * ``ship_b``: significant and the whole CI above 0 (B is better).
    * ``keep_a``: significant and the whole CI below 0 (B is worse), or the CI's upper end
      is below `mde` (futility: an improvement worth shipping is ruled out).
    * ``keep_running`` otherwise, with `more_samples` per arm: the extra observations until the
      CI half-width plus ``z_power`` standard errors fits inside `mde` at the current pooled SD
      (where a true effect of `mde` is detected, or a null one shows futility, with about
      `power` probability), and at least until the half-width fits inside
      ``max(d, mde - d)`` for the current estimate d. A rough guide, re-estimated every look;
      None when the data show no variance yet.
    """
    mde_ = _positive(mde, "mde")
    z_power = _z(_open_unit(power, "power"))
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * result.effect
    lo, hi = sorted((sign * result.ci_low, sign * result.ci_high))
    ci = f"[{lo:+.4g}, {hi:+.4g}]"
    word = "improvement" if higher_is_better else "improvement (reduction)"
    if result.significant and lo > 0:
        return Decision(
            "ship_b",
            f"B is better: {word} {gain:+.4g}, always-valid CI {ci}, p={result.p_value:.3g}",
            None,
        )
    if result.significant and hi < 0:
        return Decision(
            "keep_a",
            f"B is worse: {word} {gain:+.4g}, always-valid CI {ci}, p={result.p_value:.3g}",
            None,
        )
    if hi < mde_:
        return Decision(
            "keep_a",
            f"futility: the always-valid CI {ci} rules out an {word} of "
            f"{mde_:.4g} (the declared minimum effect)",
            None,
        )
    n_now = min(result.n_a, result.n_b)
    if not (result.sd > 0 and math.isfinite(result.sd)):
        return Decision("keep_running", "no variance in the data yet: keep collecting", None)
    n_plan = _n_for(mde_, result.sd, result.tau, result.alpha, z_power)
    n_point = _n_for(max(gain, mde_ - gain), result.sd, result.tau, result.alpha, 0.0)
    if n_plan is None or n_point is None:
        return Decision("keep_running", f"undecided, CI {ci}; sample size not estimable", None)
    more = max(1, max(n_plan, n_point) - n_now)
    return Decision(
        "keep_running",
        f"undecided: {word} {gain:+.4g}, always-valid CI {ci} includes 0 and {mde_:.4g}; "
        f"about {more} more per arm",
        more,
    )


def guardrail_breached(
    x_a: ArrayLike,
    x_b: ArrayLike,
    limit: float,
    higher_is_worse: bool,
    alpha: float = 0.05,
    *,
    tau: float | None = None,
) -> bool:
    """True when the always-valid CI shows B degrades the metric by more than `limit`.

    Degradation is ``mean_b - mean_a`` if `higher_is_worse` (latency, cost, guard-flag or
    error rate) else ``mean_a - mean_b`` (thumbs-up rate, rating). `limit` >= 0 is the
    tolerated degradation in absolute metric units (for a relative limit pass
    ``fraction * mean_a``). The exact rule: breached iff the lower end of the degradation's
    (1 - alpha) confidence sequence from `sequential` exceeds `limit`. The probability of
    ever raising a false alarm, however often it is checked, is at most alpha/2 (one side of
    a two-sided sequence)."""
    limit_ = float(limit)
    if not (math.isfinite(limit_) and limit_ >= 0):
        raise ValueError(f"limit must be a finite number >= 0, got {limit!r}")
    res = sequential(x_a, x_b, alpha=alpha, tau=tau)
    lower = res.ci_low if higher_is_worse else -res.ci_high
    return bool(lower > limit_)


# --------------------------------------------------------------------------- simulation


def simulate(
    effect: float,
    experiments: int,
    peek_every: int,
    *,
    base_rate: float = 0.3,
    max_samples_per_arm: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    metric: Literal["binary", "continuous"] = "binary",
    sd: float = 1.0,
    tau: float | None = None,
    test: Literal["sequential", "naive"] = "sequential",
) -> dict[str, Any]:
    """Monte-Carlo A/B tests with peeking; returns a JSON-able summary.

    Arm A has mean `base_rate` and B ``base_rate + effect``: Bernoulli for "binary", normal
    with SD `sd` for "continuous". Both arms grow together; every `peek_every` observations
    per arm (and at `max_samples_per_arm`) the test is read, and the experiment stops at its
    first rejection or at the horizon. ``test="sequential"`` reads `sequential`'s statistic
    (same formula, same pooled variance); ``test="naive"`` reads the fixed-horizon pooled
    z-test at every look, the practice the sequential test replaces.

    Keys: `rejection_rate` (any rejection) with its Wilson 95% `rejection_rate_ci`;
    `false_positive_rate` (= rejection rate, effect 0 only); `sequential_power` (rejections
    in the right direction, effect != 0 only); `mean_samples_to_decision` (per arm, at the
    first rejection or the horizon, over all experiments) and `mean_samples_when_rejected`;
    `fixed_horizon_samples` (the calculator's n per arm for this effect at alpha, power 0.8);
    `promised_power` (the calculator's power for a single fixed-horizon test at
    `max_samples_per_arm`, i.e. what reading once at the same horizon would give; the
    sequential test pays for peeking with less than that); `horizon_inflation`
    (``max_samples_per_arm / fixed_horizon_samples``); `seconds` (wall time).
    Vectorised over experiments with cumulative sums; deterministic given `seed`.
    """
    effect = float(effect)
    experiments = _count(experiments, "experiments", 1)
    peek_every = _count(peek_every, "peek_every", 1)
    horizon = _count(max_samples_per_arm, "max_samples_per_arm", 2)
    alpha = _open_unit(alpha, "alpha")
    tau_ = _check_tau(tau)
    if metric not in ("binary", "continuous"):
        raise ValueError(f"metric must be 'binary' or 'continuous', got {metric!r}")
    if test not in ("sequential", "naive"):
        raise ValueError(f"test must be 'sequential' or 'naive', got {test!r}")
    if metric == "binary":
        _open_unit(base_rate, "base_rate")
        if not 0.0 <= base_rate + effect <= 1.0:
            rate_b = base_rate + effect
            raise ValueError(f"base_rate + effect must be a rate in [0, 1], got {rate_b}")
    else:
        _positive(sd, "sd")
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    looks = np.arange(peek_every, horizon + 1, peek_every, dtype=np.int64)
    if looks.size == 0 or looks[-1] != horizon:
        looks = np.append(looks, horizon)
    n = looks.astype(np.float64)
    n_eff = n / 2.0
    log_threshold = math.log(1.0 / alpha)
    z_crit2 = _z(1 - alpha / 2) ** 2

    stop = np.full(experiments, horizon, dtype=np.int64)
    rejected = np.zeros(experiments, dtype=bool)
    right_way = np.zeros(experiments, dtype=bool)
    chunk = max(1, 4_000_000 // horizon)
    for first in range(0, experiments, chunk):
        m = min(chunk, experiments - first)
        if metric == "binary":
            blocks = np.diff(np.concatenate([[0], looks]))
            draws_a = rng.binomial(blocks, base_rate, size=(m, looks.size))
            draws_b = rng.binomial(blocks, base_rate + effect, size=(m, looks.size))
            sa = np.cumsum(draws_a, axis=1).astype(np.float64)
            sb = np.cumsum(draws_b, axis=1).astype(np.float64)
            s = sa + sb
            q = s  # x*x == x for 0/1 data
            diff = (sb - sa) / n
        else:  # A's mean shifted to 0: the tests are shift-invariant
            xa = rng.normal(0.0, sd, size=(m, horizon))
            xb = rng.normal(effect, sd, size=(m, horizon))
            idx = looks - 1
            sa, sb = np.cumsum(xa, axis=1)[:, idx], np.cumsum(xb, axis=1)[:, idx]
            s = sa + sb
            q = np.cumsum(xa * xa, axis=1)[:, idx] + np.cumsum(xb * xb, axis=1)[:, idx]
            diff = (sb - sa) / n
        total = 2.0 * n
        ss = np.maximum(q - s * s / total, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            if test == "sequential":
                var = ss / (total - 1.0)
                z2 = np.where(var > 0, diff * diff * n_eff / var, 0.0)
                reject = _log_mixture_lr(z2, n_eff, tau_) >= log_threshold
            else:
                var = ss / total  # the pooled p(1-p) of the z-test for binary data
                z2 = np.where(var > 0, diff * diff * n_eff / var, 0.0)
                reject = z2 >= z_crit2
        any_reject = reject.any(axis=1)
        first_look = np.argmax(reject, axis=1)
        rows = slice(first, first + m)
        rejected[rows] = any_reject
        stop[rows] = np.where(any_reject, looks[first_look], horizon)
        sign = np.sign(diff[np.arange(m), first_look])
        right_way[rows] = any_reject & (sign == np.sign(effect))

    k = int(rejected.sum())
    rate = k / experiments
    lo, hi = wilson_interval(k, experiments)
    fixed_n: int | None = None
    promised: float | None = None
    if effect != 0:
        if metric == "binary":
            fixed_n = sample_size_proportions(base_rate, effect, alpha, 0.8)
            promised = power_proportions(base_rate, effect, horizon, alpha)
        else:
            fixed_n = sample_size_means(sd, effect, alpha, 0.8)
            promised = power_means(sd, effect, horizon, alpha)
    return {
        "experiments": experiments,
        "effect": effect,
        "metric": metric,
        "test": test,
        "base_rate": float(base_rate),
        "alpha": alpha,
        "tau": tau_,
        "peek_every": peek_every,
        "looks": int(looks.size),
        "max_samples_per_arm": horizon,
        "rejection_rate": rate,
        "rejection_rate_ci": [lo, hi],
        "false_positive_rate": rate if effect == 0 else None,
        "sequential_power": float(right_way.mean()) if effect != 0 else None,
        "mean_samples_to_decision": float(stop.mean()),
        "mean_samples_when_rejected": float(stop[rejected].mean()) if k else None,
        "fixed_horizon_samples": fixed_n,
        "promised_power": promised,
        "horizon_inflation": horizon / fixed_n if fixed_n else None,
        "seconds": round(time.perf_counter() - start, 4),
    }
