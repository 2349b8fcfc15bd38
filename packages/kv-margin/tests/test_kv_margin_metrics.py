"""Kendall tau, granulated tau and the PGDL conditional mutual information score."""

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau

from papershelf.kv_margin import granulated_kendall_tau, kendall_tau, pgdl_cmi


def grid():
    rows = list(itertools.product([0, 1, 2], ["a", "b"], [0.1, 0.2]))
    hp = {"depth": [r[0] for r in rows], "opt": [r[1] for r in rows], "lr": [r[2] for r in rows]}
    return rows, hp


def test_kendall_tau_matches_scipy_without_ties():
    rng = np.random.default_rng(0)
    m, g = rng.normal(size=30), rng.normal(size=30)
    assert kendall_tau(m, g) == pytest.approx(kendalltau(m, g).statistic, rel=1e-12)
    assert kendall_tau(g, g) == 1.0 and kendall_tau(-g, g) == -1.0


def test_granulated_tau_by_hand():
    rows, hp = grid()
    gap = np.array([r[0] + (0.5 if r[1] == "b" else 0) for r in rows], dtype=float)
    measure = np.array([-r[0] + (0.5 if r[1] == "b" else 0) + 0.01 * (r[2] == 0.2) for r in rows])
    res = granulated_kendall_tau(measure, gap, hp)
    assert res["depth"] == pytest.approx(-1.0)  # measure inverts depth
    assert res["opt"] == pytest.approx(1.0)
    assert res["lr"] == pytest.approx(0.0)  # gap constant within lr groups -> ties
    assert res["mean"] == pytest.approx(0.0)


def test_cmi_identical_measure_scores_one_and_random_about_zero():
    rows, hp = grid()
    rng = np.random.default_rng(1)
    gap = rng.normal(size=len(rows))
    assert pgdl_cmi(gap, gap, hp) == pytest.approx(1.0)
    assert pgdl_cmi(2 * gap + 3, gap, hp) == pytest.approx(1.0)
    big = list(itertools.product(range(4), range(4), range(4)))
    hpb = {k: [r[i] for r in big] for i, k in enumerate("abc")}
    scores = [pgdl_cmi(rng.normal(size=64), rng.normal(size=64), hpb) for _ in range(5)]
    assert np.mean(scores) < 0.1


def test_cmi_hand_computed_four_models():
    # one hyper-parameter h with values 0, 0, 1, 1: cells (h_a, h_b)
    hp = {"h": [0, 0, 1, 1]}
    gap = np.array([0.1, 0.2, 0.3, 0.4])
    measure = np.array([2.0, 1.0, 3.0, 4.0])
    # cell (0,0): pairs (0,0),(0,1),(1,0),(1,1): Vg = 0,0,1,0; Vm = 0,1,0,0
    t00 = np.array([[2, 1], [1, 0]])  # rows Vg, cols Vm
    # cell (1,1): models 2,3 ordered alike: Vg = Vm = 0,0,1,0
    t11 = np.array([[3, 0], [0, 1]])
    # cells (0,1) and (1,0): gap and measure of model 2,3 exceed 0,1 -> Vg = Vm everywhere
    t01 = np.array([[4, 0], [0, 0]])
    t10 = np.array([[0, 0], [0, 4]])

    def mi(t):
        p = t / t.sum()
        pi, pj = p.sum(1), p.sum(0)
        return sum(
            p[i, j] * np.log2(p[i, j] / (pi[i] * pj[j]))
            for i in range(2)
            for j in range(2)
            if p[i, j] > 0
        )

    def h(t):
        p = t.sum(1) / t.sum()
        p = p[p > 0]
        return -(p * np.log2(p)).sum()

    tables = [t00, t01, t10, t11]
    expected = np.mean([mi(t) for t in tables]) / np.mean([h(t) for t in tables])
    assert pgdl_cmi(measure, gap, hp) == pytest.approx(expected, rel=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match="gap must have length 3"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match="hparams"):
        pgdl_cmi([1, 2], [1, 2], {})
    with pytest.raises(ValueError, match=r"hparams\['a'\] must have length 2"):
        granulated_kendall_tau([1, 2], [1, 2], {"a": [1, 2, 3]})
