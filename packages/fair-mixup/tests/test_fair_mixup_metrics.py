"""Soft fairness gaps and average precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from papershelf.fair_mixup import average_precision, demographic_parity_gap, equalized_odds_gap


def test_dp_gap_by_hand_numpy_and_torch():
    s = [0.9, 0.7, 0.2, 0.4]
    a = [0, 0, 1, 1]
    assert demographic_parity_gap(s, a) == pytest.approx(0.5)
    assert demographic_parity_gap(torch.tensor(s).reshape(-1, 1), torch.tensor(a)) == (
        pytest.approx(0.5)
    )
    assert demographic_parity_gap(s, a, threshold=0.5) == pytest.approx(1.0)
    assert isinstance(demographic_parity_gap(np.array(s), np.array(a)), float)


def test_eo_gap_sum_and_max():
    s = np.array([0.9, 0.1, 0.6, 0.3, 0.8, 0.2, 0.2, 0.5])
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    # y=1: group0 mean (0.9+0.6)/2=0.75, group1 (0.8+0.2)/2=0.5 -> 0.25
    # y=0: group0 (0.1+0.3)/2=0.2, group1 (0.2+0.5)/2=0.35 -> 0.15
    assert equalized_odds_gap(s, y, a) == pytest.approx(0.40)
    assert equalized_odds_gap(s, y, a, reduce="max") == pytest.approx(0.25)
    # Hard, max: fairlearn's equalized_odds_difference (TPR diff 1-0.5, FPR diff 0.5-0).
    assert equalized_odds_gap(s, y, a, threshold=0.5, reduce="max") == pytest.approx(0.5)


def test_dp_gap_of_two_gaussians_matches_closed_form():
    # x | A=a ~ N(m_a, 1), f(x) = Phi(w x + b): E f = Phi((w m_a + b) / sqrt(1 + w^2)).
    rng = np.random.default_rng(0)
    n, m0, m1, w, b = 400_000, 1.0, -0.5, 1.5, 0.2
    x = np.r_[rng.normal(m0, 1, n), rng.normal(m1, 1, n)]
    a = np.r_[np.zeros(n), np.ones(n)]
    normal = torch.distributions.Normal(0.0, 1.0)
    s = normal.cdf(torch.tensor(w * x + b)).numpy()
    want = float(
        normal.cdf(torch.tensor((w * m0 + b) / np.sqrt(1 + w * w)))
        - normal.cdf(torch.tensor((w * m1 + b) / np.sqrt(1 + w * w)))
    )
    assert demographic_parity_gap(s, a) == pytest.approx(abs(want), abs=3e-3)


def test_average_precision_matches_sklearn_values():
    # Values of sklearn.metrics.average_precision_score on the same inputs (sklearn 1.9.1).
    assert average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.8333333333)
    y = [1, 0, 1, 1, 0, 0, 1, 0]
    s = [0.5, 0.5, 0.9, 0.3, 0.3, 0.1, 0.5, 0.7]  # ties
    assert average_precision(y, s) == pytest.approx(SKLEARN_TIES, rel=1e-12)
    rng = np.random.default_rng(3)
    yy = rng.integers(0, 2, 200)
    ss = np.round(rng.random(200), 2)
    assert average_precision(yy, ss) == pytest.approx(SKLEARN_RANDOM, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: demographic_parity_gap([0.1, 0.2], [0, 0]), "size zero"),
        (lambda: demographic_parity_gap([0.1, 0.2], [0, 1, 1]), "length"),
        (lambda: demographic_parity_gap([0.1, 0.2], [0, 2]), "binary"),
        (lambda: demographic_parity_gap(np.zeros((2, 2)), [0, 1]), "1-D"),
        (lambda: equalized_odds_gap([0.1, 0.2], [1, 1], [0, 1]), r"y=0"),
        (lambda: equalized_odds_gap([0.1, 0.2], [0, 1], [0, 1], reduce="mean"), "reduce"),
        (lambda: average_precision([0, 0], [0.1, 0.2]), "no positive"),
        (lambda: average_precision([0, 1], [0.1, float("nan")]), "NaN"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


SKLEARN_TIES = 0.6928571428571428
SKLEARN_RANDOM = 0.5393099056099383


def test_import_is_lazy_and_old_names_stay_reachable():
    """``import papershelf.fair_mixup`` loads no torch; the gaps and Adult never need it."""
    import subprocess
    import sys

    code = (
        "import sys, papershelf.fair_mixup as fm\n"
        "assert 'torch' not in sys.modules\n"
        "assert len(fm.__all__) <= 9, fm.__all__\n"
        "from papershelf.fair_mixup import demographic_parity_gap, equalized_odds_gap\n"
        "assert demographic_parity_gap([0.9, 0.7, 0.2, 0.4], [0, 0, 1, 1]) == 0.5\n"
        "assert 'torch' not in sys.modules\n"
        "from papershelf.fair_mixup import (AdultMLP, AdversarialDebiasing, GroupBatchSampler,\n"
        "    average_precision, mixup_path_penalty, read_adult, sample_t, sweep, train_step)\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_half_precision_scores_accepted():
    # scores computed under CPU autocast are bfloat16: numpy conversion was a bare TypeError
    g = torch.Generator().manual_seed(0)
    s = torch.rand(20, generator=g)
    a = torch.tensor([0, 1] * 10)
    y = torch.tensor([0, 0, 1, 1] * 5)
    for dt in (torch.bfloat16, torch.float16):
        q = s.to(dt)
        ref = q.double()
        assert demographic_parity_gap(q, a) == pytest.approx(demographic_parity_gap(ref, a))
        assert equalized_odds_gap(q, y, a) == pytest.approx(equalized_odds_gap(ref, y, a))
        assert average_precision(y, q) == pytest.approx(average_precision(y, ref))
        assert demographic_parity_gap(s, a.to(dt)) == pytest.approx(demographic_parity_gap(s, a))
