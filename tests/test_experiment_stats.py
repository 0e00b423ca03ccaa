"""A/B-test statistics: fixed tests against scipy, the sequential test's error rates by
simulation, CUPED, Holm, the calculators, decisions and input validation."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from bastion.experiments.stats import (
    DEFAULT_TAU,
    HORIZON_INFLATION,
    SequentialResult,
    cuped,
    cuped_arms,
    decide,
    guardrail_breached,
    holm,
    mann_whitney,
    power_means,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
    sequential,
    simulate,
    tau_for,
    two_proportions,
    welch,
    wilson_interval,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- fixed horizon


def test_two_proportions_matches_chi_square_and_wald_ci() -> None:
    res = two_proportions(120, 1000, 150, 1000)
    table = np.array([[120, 880], [150, 850]])
    chi2_p = sps.chi2_contingency(table, correction=False)[1]
    assert res.name == "two_proportions"
    assert res.effect == pytest.approx(0.03)
    assert res.p_value == pytest.approx(chi2_p, rel=1e-9)
    assert res.p_value == pytest.approx(0.0496, abs=1e-4)  # pooled 0.135: z = 1.963
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.15 * 0.85 / 1000)
    assert res.ci_low == pytest.approx(0.03 - 1.959964 * se, rel=1e-5)
    assert res.ci_high == pytest.approx(0.03 + 1.959964 * se, rel=1e-5)
    assert res.significant  # the Wald CI agrees here: it just excludes 0
    assert res.ci_low > 0
    assert not two_proportions(130, 1000, 150, 1000).significant
    degenerate = two_proportions(0, 10, 0, 10)
    assert degenerate.p_value == 1.0 and not degenerate.significant


def test_welch_matches_scipy_with_b_minus_a_sign() -> None:
    a, b = rng(1).normal(3.6, 1.0, 80), rng(2).normal(4.0, 1.6, 60)
    res = welch(a, b)
    ref = sps.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert res.effect == pytest.approx(b.mean() - a.mean())
    assert res.p_value == pytest.approx(ref.pvalue)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high))
    assert res.significant == (ref.pvalue <= 0.05)
    flat = welch([2.0, 2.0], [2.0, 2.0])
    assert flat.p_value == 1.0 and not flat.significant


def test_mann_whitney_matches_scipy_and_brute_force_effect() -> None:
    a = rng(3).integers(1, 6, 40).astype(float)  # 1-5 ratings, many ties
    b = rng(4).integers(2, 6, 50).astype(float)
    res = mann_whitney(a, b)
    assert res.p_value == pytest.approx(sps.mannwhitneyu(b, a).pvalue)
    diff = b[:, None] - a[None, :]
    auc = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size
    assert res.effect == pytest.approx(2 * auc - 1)
    assert res.ci_low < res.effect < res.ci_high
    assert res.ci_low >= -1 and res.ci_high <= 1
    separated = mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert separated.effect == 1.0 and separated.p_value == pytest.approx(0.1)


# --------------------------------------------------------------------------- CUPED and Holm


def test_cuped_reduces_variance_when_covariate_correlates() -> None:
    g = rng(5)
    x = g.normal(10, 2, 5000)  # pre-experiment value
    y = 0.8 * x + g.normal(0, 1, 5000)
    adjusted = cuped(y, x)
    rho = np.corrcoef(x, y)[0, 1]
    assert adjusted.mean() == pytest.approx(y.mean())
    assert adjusted.var() == pytest.approx(y.var() * (1 - rho**2), rel=1e-6)
    assert adjusted.var() < 0.3 * y.var()
    np.testing.assert_allclose(cuped(y, np.ones_like(y)), y)  # constant covariate: untouched
    with pytest.raises(ValueError, match="covariate has"):
        cuped(y, x[:-1])


def test_cuped_arms_keeps_the_effect_and_narrows_the_interval() -> None:
    g = rng(6)
    xa, xb = g.normal(0, 1, 3000), g.normal(0, 1, 3000)
    ya = xa + g.normal(0, 0.5, 3000)
    yb = xb + 0.1 + g.normal(0, 0.5, 3000)
    adj_a, adj_b = cuped_arms(ya, xa, yb, xb)
    raw, adj = welch(ya, yb), welch(adj_a, adj_b)
    assert adj.ci_low < 0.1 < adj.ci_high
    assert (adj.ci_high - adj.ci_low) < 0.5 * (raw.ci_high - raw.ci_low)


def test_holm_hand_computed() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).size == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.2, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_properties(ps: list[float]) -> None:
    p = np.array(ps)
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)


# --------------------------------------------------------------------------- calculators


def test_sample_size_textbook_values() -> None:
    # 10% -> 12%: Fleiss's formula gives 3840.9 -> 3,841 per arm.
    assert sample_size_proportions(0.10, 0.02) == 3841
    assert power_proportions(0.10, 0.02, 3841) >= 0.8 > power_proportions(0.10, 0.02, 3830)
    assert sample_size_proportions(0.10, -0.02) == sample_size_proportions(0.08, 0.02)
    assert sample_size_proportions(0.3, 0.06) == 963
    # 2 * (1.95996 + 0.84162)^2 / 0.2^2 = 392.4
    assert sample_size_means(1.0, 0.2) == 393
    assert power_means(1.0, 0.2, 393) == pytest.approx(0.8, abs=2e-3)
    assert sample_size_means(2.0, 0.2, alpha=0.01, power=0.9) > 4 * 393


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson_interval(10, 100)
    assert (lo, hi) == pytest.approx((0.0552, 0.1744), abs=1e-4)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(50, 50)[1] == 1.0


# --------------------------------------------------------------------------- sequential


def test_sequential_matches_the_mixture_formula_at_the_last_look() -> None:
    g = rng(7)
    a, b = g.normal(0, 1, 500), g.normal(0.3, 1, 500)
    res = sequential(a, b, tau=0.2)
    d = b.mean() - a.mean()
    s = np.concatenate([a, b]).std(ddof=1)
    n_eff, r = 250.0, 250 * 0.04
    log_lr = -0.5 * math.log1p(r) + 0.5 * (d * d * n_eff / s**2) * r / (1 + r)
    assert res.effect == pytest.approx(d) and res.sd == pytest.approx(s)
    assert res.p_value <= min(1.0, math.exp(-log_lr)) + 1e-12  # running minimum
    assert res.significant and res.ci_low > 0
    half = s * math.sqrt(2 * (1 + r) / (n_eff * r) * (math.log(20) + 0.5 * math.log1p(r)))
    assert res.ci_low >= d - half - 1e-12 and res.ci_high <= d + half + 1e-12


def test_sequential_is_monotone_and_consistent_over_the_history() -> None:
    g = rng(8)
    a = (g.random(3000) < 0.30).astype(float)
    b = (g.random(3000) < 0.36).astype(float)
    results = [sequential(a[:n], b[:n]) for n in (100, 500, 1000, 2000, 3000)]
    p_values = [r.p_value for r in results]
    assert p_values == sorted(p_values, reverse=True)  # running minimum
    for r in results:
        assert r.significant == (r.ci_low > 0 or r.ci_high < 0)
    widths = [r.ci_high - r.ci_low for r in results]
    assert widths == sorted(widths, reverse=True)  # running intersection
    assert results[-1].significant and results[-1].ci_low > 0


def test_sequential_without_information_is_wide_open() -> None:
    res = sequential([1.0, 1.0, 1.0], [1.0, 1.0])
    assert res.p_value == 1.0 and not res.significant
    assert res.ci_low == -math.inf and res.ci_high == math.inf
    one_each = sequential([0.0], [1.0])
    assert one_each.p_value == 1.0 and one_each.effect == 1.0


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=60),
    st.lists(st.floats(-100, 100), min_size=1, max_size=60),
)
def test_sequential_significance_agrees_with_its_interval(xa: list[float], xb: list[float]) -> None:
    res = sequential(xa, xb)
    assert 0 <= res.p_value <= 1
    assert res.ci_low <= res.ci_high
    if math.isfinite(res.ci_low):
        assert res.significant == (res.ci_low > 0 or res.ci_high < 0)


def test_sequential_unbalanced_arms_and_tau_for() -> None:
    g = rng(9)
    res = sequential(g.normal(5, 1, 400), g.normal(5.5, 1, 1200))
    assert res.n_a == 400 and res.n_b == 1200 and res.significant and res.ci_low > 0
    assert res.tau == DEFAULT_TAU
    assert tau_for(0.06, 0.5) == pytest.approx(0.12)


# --------------------------------------------------------------------------- simulation


def test_aa_with_continuous_peeking_keeps_false_positives_under_alpha() -> None:
    """Criterion: the Wilson 95% interval's lower bound is <= 0.05 (the data cannot show the
    rate exceeds 5%) - and here even the point estimate is under 5%."""
    for metric in ("binary", "continuous"):
        out = simulate(0.0, 2000, 10, metric=metric, seed=11)
        lo, _ = out["rejection_rate_ci"]
        assert out["looks"] == 200
        assert lo <= 0.05 and out["false_positive_rate"] <= 0.05, out
    every = simulate(0.0, 1000, 1, seed=12)  # a look after every single pair
    assert every["rejection_rate_ci"][0] <= 0.05 and every["rejection_rate"] <= 0.05, every


def test_naive_peeking_inflates_false_positives() -> None:
    out = simulate(0.0, 2000, 10, test="naive", seed=11)
    lo, _ = out["rejection_rate_ci"]
    assert lo > 0.2, out  # about 0.43 with 200 looks: this is why the sequential test exists
    once = simulate(0.0, 2000, 2000, test="naive", seed=11)  # read once: nominal 5%
    assert once["rejection_rate_ci"][0] <= 0.05 <= once["rejection_rate_ci"][1], once


def test_sequential_power_at_the_inflated_horizon() -> None:
    """0.30 -> 0.36: the calculator promises 0.8 at 963 per arm for one fixed-horizon read.
    With peeking every 10, tau matched to the MDE and the horizon at HORIZON_INFLATION x 963,
    the sequential test must still reach 0.8 (Wilson lower bound), yet stops on average near
    the fixed-horizon n; at the same horizon it has less power than a single read would."""
    fixed_n = sample_size_proportions(0.3, 0.06)
    horizon = math.ceil(HORIZON_INFLATION * fixed_n)
    out = simulate(
        0.06, 2000, 10, max_samples_per_arm=horizon, tau=tau_for(0.06, math.sqrt(0.3 * 0.7))
    )
    assert out["fixed_horizon_samples"] == fixed_n
    assert out["sequential_power"] >= 0.8 and out["rejection_rate_ci"][0] >= 0.8, out
    assert out["sequential_power"] <= out["promised_power"]
    assert out["mean_samples_to_decision"] < 1.25 * fixed_n
    json.dumps(out)


def test_simulate_is_deterministic_and_fast() -> None:
    first = simulate(0.06, 2000, 10, seed=5)
    second = simulate(0.06, 2000, 10, seed=5)
    first.pop("seconds")
    assert second.pop("seconds") < 5
    assert first == second
    assert simulate(0.06, 200, 10, seed=6) != first


# --------------------------------------------------------------------------- decisions


def _result(effect: float, lo: float, hi: float, p: float, **kw: float) -> SequentialResult:
    base = SequentialResult(
        "mixture_sprt", effect, lo, hi, p, p <= 0.05, 0.05, 0.1, 500, 500, 0.3, 0.3, 0.46
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_decide_cases() -> None:
    assert decide(_result(0.08, 0.03, 0.12, 0.001), 0.05).verdict == "ship_b"
    worse = decide(_result(-0.08, -0.12, -0.03, 0.001), 0.05)
    assert worse.verdict == "keep_a" and "worse" in worse.reason
    futile = decide(_result(0.0, -0.03, 0.04, 0.9), 0.05)  # CI below +mde: not worth it
    assert futile.verdict == "keep_a" and "futility" in futile.reason
    running = decide(_result(0.02, -0.05, 0.09, 0.6), 0.05)
    assert running.verdict == "keep_running" and running.more_samples is not None
    assert running.more_samples > 0 and str(running.more_samples) in running.reason
    # Lower is better (latency): B lower than A is the improvement.
    assert decide(_result(-0.08, -0.12, -0.03, 0.001), 0.05, higher_is_better=False).verdict == (
        "ship_b"
    )
    no_var = decide(_result(0.0, -math.inf, math.inf, 1.0, sd=0.0), 0.05)
    assert no_var.verdict == "keep_running" and no_var.more_samples is None


def test_decide_more_samples_is_plausible_and_shrinks() -> None:
    g = rng(13)
    a = (g.random(4000) < 0.30).astype(float)
    b = (g.random(4000) < 0.33).astype(float)
    fixed_n = sample_size_proportions(0.3, 0.06)
    early = decide(sequential(a[:100], b[:100], tau=0.13), 0.06)
    assert early.verdict == "keep_running" and early.more_samples is not None
    assert fixed_n < 100 + early.more_samples < 3 * fixed_n
    later = decide(sequential(a[:1000], b[:1000], tau=0.13), 0.06)
    if later.verdict == "keep_running":
        assert later.more_samples is not None and later.more_samples < early.more_samples


def test_decide_on_real_streams() -> None:
    g = rng(14)
    a = (g.random(3000) < 0.30).astype(float)
    assert decide(sequential(a, (g.random(3000) < 0.40).astype(float)), 0.05).verdict == "ship_b"
    assert decide(sequential(a, (g.random(3000) < 0.20).astype(float)), 0.05).verdict == "keep_a"


def test_guardrail_breached_only_when_degradation_exceeds_the_limit() -> None:
    g = rng(15)
    lat_a = g.lognormal(6, 0.5, 3000)  # ms, mean about 460
    lat_b = g.lognormal(6, 0.5, 3000) + 60  # 60 ms slower
    assert guardrail_breached(lat_a, lat_b, 10, higher_is_worse=True)
    assert not guardrail_breached(lat_a, lat_b, 100, higher_is_worse=True)
    assert not guardrail_breached(lat_b, lat_a, 0, higher_is_worse=True)  # B faster
    rating_a, rating_b = g.normal(4.2, 0.8, 2000), g.normal(3.9, 0.8, 2000)
    assert guardrail_breached(rating_a, rating_b, 0.1, higher_is_worse=False)
    assert not guardrail_breached(rating_a, rating_b, 0.5, higher_is_worse=False)
    with pytest.raises(ValueError, match="limit"):
        guardrail_breached(lat_a, lat_b, -1, higher_is_worse=True)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: welch([], [1.0, 2.0]), "x_a is empty"),
        (lambda: welch([1.0], [1.0, 2.0]), "needs 2"),
        (lambda: mann_whitney([1.0], []), "x_b is empty"),
        (lambda: sequential([], [1.0]), "x_a is empty"),
        (lambda: sequential([1.0, float("nan")], [1.0]), "NaN"),
        (lambda: sequential([[1.0, 2.0]], [1.0]), "one-dimensional"),
        (lambda: sequential([1.0], [2.0], alpha=1.5), "alpha"),
        (lambda: sequential([1.0], [2.0], tau=0), "tau"),
        (lambda: two_proportions(0, 0, 1, 10), "n_a must be at least 1"),
        (lambda: two_proportions(1, 10, 1, -5), "n_b must be at least 1"),
        (lambda: two_proportions(-1, 10, 1, 10), "success_a must be at least 0"),
        (lambda: two_proportions(11, 10, 1, 10), "cannot exceed"),
        (lambda: two_proportions(1.5, 10, 1, 10), "whole number"),  # type: ignore[arg-type]
        (lambda: sample_size_proportions(0.1, 0.0), "mde"),
        (lambda: sample_size_proportions(0.95, 0.1), "p_base \\+ mde"),
        (lambda: sample_size_means(-1.0, 0.1), "sd"),
        (lambda: power_proportions(0.1, 0.02, 0), "n_per_arm"),
        (lambda: power_means(1.0, 0.1, -3), "n_per_arm"),
        (lambda: cuped([], []), "y is empty"),
        (lambda: decide(_result(0.0, -1.0, 1.0, 1.0), 0.0), "mde"),
        (lambda: simulate(0.0, 0, 10), "experiments"),
        (lambda: simulate(0.0, 10, 0), "peek_every"),
        (lambda: simulate(0.8, 10, 10), "rate in"),
        (lambda: simulate(0.0, 10, 10, metric="ordinal"), "metric"),  # type: ignore[arg-type]
        (lambda: wilson_interval(5, 0), "trials"),
    ],
)
def test_invalid_inputs_raise_clear_value_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
