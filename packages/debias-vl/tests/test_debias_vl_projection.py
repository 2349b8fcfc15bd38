"""The closed forms: P0 algebra, calibration optimality, official parity, low-rank path, errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papershelf.core.testing import assert_close
from papershelf.debias_vl import (
    calibrated_projection,
    calibration_matrix,
    gather_pairs,
    low_rank_projection,
    profession_pairs,
    projection_matrix,
    spurious_basis,
)

DATA = Path(__file__).parent / "data"


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return _unit(rng.normal(size=(8, 32))), _unit(rng.normal(size=(20, 2, 32)))


# --- P0 -------------------------------------------------------------------------------------


def test_projection_is_symmetric_idempotent_and_removes_spurious(problem):
    V, _ = problem
    P0 = projection_matrix(V)
    assert P0.shape == (32, 32)
    assert np.abs(P0 - P0.T).max() == 0.0
    assert np.abs(P0 @ P0 - P0).max() <= 1e-14
    assert np.abs(V @ P0.T).max() <= 1e-14
    assert np.trace(P0) == pytest.approx(32 - 8, abs=1e-12)


def test_projection_matches_paper_formula_on_full_rank(problem):
    V, _ = problem
    Vc = V.T  # columns
    paper = np.eye(32) - Vc @ np.linalg.solve(Vc.T @ Vc, Vc.T)
    assert_close(projection_matrix(V), paper, atol=1e-13)


def test_projection_duplicated_and_collinear_prompts():
    rng = np.random.default_rng(1)
    base = _unit(rng.normal(size=(3, 16)))
    V = np.concatenate([base, base[:1], 2.0 * base[1:2], base[0:1] + base[2:3]])  # rank 3, k = 6
    with np.errstate(all="ignore"):
        assert np.linalg.matrix_rank(V.T @ V) == 3  # the paper's (V^T V)^-1 does not exist
    P0 = projection_matrix(V)
    assert np.trace(P0) == pytest.approx(16 - 3, abs=1e-12)
    assert_close(P0, projection_matrix(base), atol=1e-13)
    assert spurious_basis(V).shape == (16, 3)


def test_projection_torch_keeps_type_dtype():
    V = torch.randn(4, 12, dtype=torch.float32, generator=torch.Generator().manual_seed(0))
    P0 = projection_matrix(V)
    assert isinstance(P0, torch.Tensor) and P0.dtype == torch.float32
    assert_close(P0, projection_matrix(V.double().numpy()), atol=1e-6)
    P0_np32 = projection_matrix(V.numpy())
    assert isinstance(P0_np32, np.ndarray) and P0_np32.dtype == np.float32


# --- calibration ----------------------------------------------------------------------------


def test_calibration_matrix_is_mean_outer_product(problem):
    _, Z = problem
    M = calibration_matrix(Z)
    D = Z[:, 0] - Z[:, 1]
    assert_close(M, sum(np.outer(x, x) for x in D) / len(D), atol=1e-15)
    assert_close(calibration_matrix((Z[:, 0], Z[:, 1])), M, atol=0)
    assert np.linalg.eigvalsh(M).min() >= -1e-14


@pytest.mark.parametrize("lam", [0.5, 10.0, 1000.0])
def test_calibrated_projection_stationarity(problem, lam):
    V, Z = problem
    P0, M = projection_matrix(V), calibration_matrix(Z)
    P = calibrated_projection(V, Z, lam=lam)
    # gradient of ||P - P0||^2 + lam * tr(P M P^T) vanishes: (P - P0) + lam P M = 0
    assert np.abs((P - P0) + lam * P @ M).max() <= 1e-12


def test_lam_zero_gives_projection(problem):
    V, Z = problem
    assert_close(calibrated_projection(V, Z, lam=0.0), projection_matrix(V), atol=1e-15)
    assert_close(calibrated_projection(None, Z, lam=0.0), np.eye(32), atol=0)


def test_calibrated_projection_is_the_minimiser_found_by_gradient_descent():
    rng = np.random.default_rng(3)
    V, Z, lam = _unit(rng.normal(size=(2, 8))), _unit(rng.normal(size=(5, 2, 8))), 3.0
    P0, M = projection_matrix(V), calibration_matrix(Z)

    def loss(P):
        D = Z[:, 0] - Z[:, 1]
        return ((P - P0) ** 2).sum() + lam / len(D) * ((D @ P.T) ** 2).sum()

    # plain gradient descent on the paper's objective, step 1/L for the quadratic's curvature L
    L = 2.0 * (1.0 + lam * np.linalg.eigvalsh(M).max())
    P = np.zeros((8, 8))
    for _ in range(3000):
        P -= (2.0 * (P - P0) + 2.0 * lam * P @ M) / L
    P_star = calibrated_projection(V, Z, lam=lam)
    assert_close(P, P_star, atol=1e-10)
    assert loss(P_star) <= loss(P_star + 1e-3 * rng.normal(size=(8, 8)))


def test_pair_gap_shrinks_with_lambda(problem):
    V, Z = problem
    gaps = []
    for lam in [0.0, 1.0, 10.0, 100.0, 1000.0]:
        P = calibrated_projection(V, Z, lam=lam)
        gaps.append(np.linalg.norm((Z[:, 0] - Z[:, 1]) @ P.T, axis=1).mean())
    assert all(a > b for a, b in itertools.pairwise(gaps))
    assert gaps[-1] < 0.05 * gaps[0]


def test_generative_variant_is_plain_inverse(problem):
    _, Z = problem
    P = calibrated_projection(None, Z, lam=500.0)
    assert_close(P @ (np.eye(32) + 500.0 * calibration_matrix(Z)), np.eye(32), atol=1e-12)


def test_calibrated_projection_never_forms_an_inverse(problem, monkeypatch):
    V, Z = problem
    expected = calibrated_projection(V, Z, lam=1000.0)

    def forbidden(*args, **kwargs):
        raise AssertionError("an explicit inverse was formed")

    for module, name in [(torch.linalg, "inv"), (torch, "inverse"), (np.linalg, "inv")]:
        monkeypatch.setattr(module, name, forbidden)
    assert_close(calibrated_projection(V, Z, lam=1000.0), expected, atol=0)
    assert_close(calibrated_projection(torch.from_numpy(V), torch.from_numpy(Z)), expected)


# --- parity with the official implementation -------------------------------------------------


def test_parity_with_official_matrices():
    # Reference matrices computed by running the official get_proj_matrix / get_M and the
    # closed forms of main.py (P0 @ inv(lam M + I); generative inv(lam M + I)); see the JSON.
    ref = json.loads((DATA / "official_reference.json").read_text())
    V = np.array(ref["spurious"])
    pairs = gather_pairs(np.array(ref["candidates"]), ref["index_pairs"])
    assert np.abs(projection_matrix(V) - np.array(ref["P0"])).max() <= 1e-10
    assert np.abs(calibration_matrix(pairs) - np.array(ref["M"])).max() <= 1e-10
    P = calibrated_projection(V, pairs, lam=1000.0)
    assert np.abs(P - np.array(ref["P_lam1000"])).max() <= 1e-10
    Pg = calibrated_projection(None, pairs, lam=500.0)
    assert np.abs(Pg - np.array(ref["P_generative_lam500"])).max() <= 1e-10


# --- low-rank application --------------------------------------------------------------------


@pytest.mark.parametrize("use_projection", [True, False])
def test_low_rank_equals_dense(problem, use_projection):
    V, Z = problem
    spurious = V if use_projection else None
    lr = low_rank_projection(spurious, Z, lam=1000.0)
    P = calibrated_projection(spurious, Z, lam=1000.0)
    assert_close(lr.dense(), P, atol=1e-12)
    x = torch.randn(3, 7, 32, generator=torch.Generator().manual_seed(0))
    assert_close(lr.apply(x), x @ torch.from_numpy(P).float().T, atol=1e-5)


# --- bad input -------------------------------------------------------------------------------


def test_bad_inputs(problem):
    V, Z = problem
    with pytest.raises(ValueError, match="k=32 >= d=32"):
        projection_matrix(np.eye(32))
    with pytest.raises(ValueError, match="empty"):
        projection_matrix(np.zeros((0, 8)))
    with pytest.raises(ValueError, match=r"shape \(k, d\)"):
        projection_matrix(np.ones(8))
    with pytest.raises(ValueError, match="NaN"):
        projection_matrix(np.full((2, 8), np.nan))
    with pytest.raises(ValueError, match="all zero"):
        projection_matrix(np.zeros((2, 8)))
    with pytest.raises(TypeError, match="spurious_embeddings"):
        projection_matrix([["a", "b"]])
    with pytest.raises(ValueError, match="positive_pairs is empty"):
        calibration_matrix(np.zeros((0, 2, 8)))
    with pytest.raises(ValueError, match=r"\(S, 2, d\)"):
        calibration_matrix(np.zeros((4, 3, 8)))
    with pytest.raises(ValueError, match="lam"):
        calibrated_projection(V, Z, lam=-1.0)
    with pytest.raises(ValueError, match="lam"):
        calibrated_projection(V, Z, lam=float("inf"))
    with pytest.raises(TypeError, match="lam"):
        calibrated_projection(V, Z, lam="big")
    with pytest.raises(ValueError, match="dimension mismatch"):
        calibrated_projection(V[:, :16], Z, lam=1.0)
    with pytest.raises(ValueError, match="index_pairs is empty"):
        gather_pairs(V, [])
    with pytest.raises(ValueError, match="outside"):
        gather_pairs(V, [(0, 8)])
    with pytest.raises(ValueError, match=r"\(i, i\)"):
        gather_pairs(V, [(1, 1)])
    with pytest.raises(ValueError, match="positive_pairs is empty"):
        calibrated_projection(V, [], lam=1.0)
    with pytest.raises(ValueError, match="professions"):
        profession_pairs([])


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 6),
    d=st.integers(8, 24),
    n_pairs=st.integers(1, 8),
    lam=st.floats(0.0, 1e4),
    seed=st.integers(0, 2**16),
)
def test_properties_hold_for_random_problems(k, d, n_pairs, lam, seed):
    rng = np.random.default_rng(seed)
    V, Z = _unit(rng.normal(size=(k, d))), _unit(rng.normal(size=(n_pairs, 2, d)))
    P0 = projection_matrix(V)
    assert np.abs(P0 @ P0 - P0).max() <= 1e-12
    assert np.trace(P0) == pytest.approx(d - k, abs=1e-9)
    P = calibrated_projection(V, Z, lam=lam)
    M = calibration_matrix(Z)
    scale = 1.0 + lam
    assert np.abs((P - P0) + lam * P @ M).max() <= 1e-11 * scale
    assert np.abs(V @ P).max() <= 1e-11  # P0 is a left factor: outputs x @ P.T are orthogonal to V
    assert np.linalg.norm(P, 2) <= 1.0 + 1e-9  # a contraction: it shrinks norms


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("as_torch", [False, True])
def test_rank_deficient_low_precision_prompts_remove_only_their_span(dtype, as_torch):
    # Regression: the default rank tolerance used float64's eps for every input, so float32 /
    # float16 rounding of a collinear prompt (and of a sum of two prompts) counted as extra
    # directions: P0 removed 4 directions instead of 2 (d=768, CLIP ViT-L/14's width).
    rng = np.random.default_rng(0)
    d = 768
    v = rng.normal(size=(2, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    s = v[0] + v[1]
    V = np.stack([v[0], v[1], s / np.linalg.norm(s), 0.3 * v[0]]).astype(dtype)
    V_in = torch.from_numpy(V) if as_torch else V
    P0 = np.asarray(projection_matrix(V_in), dtype=np.float64)
    assert round(np.trace(P0)) == d - 2
    B = np.asarray(spurious_basis(V_in), dtype=np.float64)
    assert B.shape == (d, 2)
    tol = 5e-2 if dtype == "float16" else 1e-5
    assert np.abs(P0 @ P0 - P0).max() < tol
    assert np.abs(V.astype(np.float64) @ P0).max() < tol
    pairs = rng.normal(size=(3, 2, d)).astype(dtype)
    lr = low_rank_projection(V_in, torch.from_numpy(pairs) if as_torch else pairs)
    assert lr.spurious_basis.shape == (d, 2)
