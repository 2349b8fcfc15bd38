r"""Closed forms of Chuang et al. (2023): the projection P0 and the calibrated projection P*.

Everything here is d x d linear algebra on prompt embeddings. Inputs may be numpy arrays or
torch tensors; the work is done in float64 and the result comes back in the input's type, dtype
and device.

References
----------
.. [1] C.-Y. Chuang, V. Jampani, Y. Li, A. Torralba, S. Jegelka. "Debiasing Vision-Language
   Models via Biased Prompts." arXiv:2302.00070, 2023. Sections 3.1 (projection) and 3.2
   (calibration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from papershelf.core.validation import check_real
from papershelf.debias_vl._backend import ArrayLike, OutputSpec, as_work_tensor, check_finite

__all__ = [
    "LowRankProjection",
    "calibrated_projection",
    "calibration_matrix",
    "gather_pairs",
    "low_rank_projection",
    "projection_matrix",
    "spurious_basis",
]


def _spurious_work(spurious_embeddings: ArrayLike) -> tuple[Tensor, OutputSpec]:
    V, spec = as_work_tensor(spurious_embeddings, "spurious_embeddings")
    if V.ndim != 2:
        raise ValueError(f"spurious_embeddings must have shape (k, d), got {tuple(V.shape)}")
    k, d = V.shape
    if k == 0:
        raise ValueError("spurious_embeddings is empty: give at least one spurious prompt")
    if k >= d:
        raise ValueError(
            f"spurious_embeddings has k={k} >= d={d} rows: projecting out k >= d directions "
            "would remove (nearly) the whole embedding space; use fewer spurious prompts"
        )
    check_finite(V, "spurious_embeddings")
    return V, spec


def _input_eps(spec: OutputSpec) -> float:
    """Machine epsilon of the caller's float dtype (float16/32 data is only that precise)."""
    if spec.is_torch:
        return float(torch.finfo(spec.dtype).eps)
    return float(np.finfo(spec.dtype).eps)


_EPS64 = float(torch.finfo(torch.float64).eps)


def _basis(V: Tensor, rtol: float | None, eps: float = _EPS64) -> Tensor:
    # Exact SVD of the (k, d) prompt matrix: the right singular vectors above the rank tolerance
    # span the same space as the columns of V, also when prompts are duplicated or collinear
    # (where V^T V is singular and the paper's (V^T V)^{-1} does not exist).
    _, s, vh = torch.linalg.svd(V, full_matrices=False)
    if rtol is None:
        # float64's max(k, d) * eps, but at least 10 eps of the input dtype: rounding a
        # rank-deficient float32/float16 prompt set to its dtype leaves singular values of
        # ~0.1 eps * s_max, which float64's tolerance would count (and remove) as directions
        rtol = max(max(V.shape) * _EPS64, 10.0 * eps)
    if rtol < 0:
        raise ValueError(f"rtol must be >= 0, got {rtol}")
    if float(s[0]) == 0.0:
        raise ValueError("spurious_embeddings are all zero: they span no direction")
    rank = int((s > rtol * s[0]).sum())
    return vh[:rank].T  # (d, r)


def spurious_basis(spurious_embeddings: ArrayLike, *, rtol: float | None = None) -> ArrayLike:
    r"""Orthonormal basis :math:`B` of the span of the spurious prompt embeddings.

    Parameters
    ----------
    spurious_embeddings : array-like, shape (k, d)
        Embeddings of the k prompts that describe only the spurious attribute, one per row.
    rtol : float, optional
        Singular values below ``rtol * s_max`` are treated as zero. Default
        ``max(k, d) * eps`` of float64 (numpy's ``matrix_rank`` convention), but at least
        ``10 * eps`` of the input's dtype, so that float32/float16 rounding of duplicated or
        collinear prompts does not count as extra directions.

    Returns
    -------
    B : array, shape (d, r)
        Orthonormal columns, r = rank of the spurious embeddings (r <= k).
    """
    V, spec = _spurious_work(spurious_embeddings)
    return spec.back(_basis(V, rtol, _input_eps(spec)))


def projection_matrix(spurious_embeddings: ArrayLike, *, rtol: float | None = None) -> ArrayLike:
    r"""Projection :math:`P_0` onto the orthogonal complement of the spurious prompts.

    .. math:: P_0 = I - V (V^\top V)^{-1} V^\top = I - B B^\top,

    with :math:`V \in \mathbb{R}^{d \times k}` the spurious embeddings as columns and :math:`B`
    an orthonormal basis of their span (computed by SVD, so duplicated or collinear prompts work).

    Parameters
    ----------
    spurious_embeddings : array-like, shape (k, d)
        Embeddings of the spurious prompts ("A photo of a male.", ...), one per row, k < d.
    rtol : float, optional
        Relative rank tolerance, see :func:`spurious_basis`.

    Returns
    -------
    P0 : array, shape (d, d)
        Symmetric, idempotent, trace d - rank(V); same array type/dtype/device as the input.

    Raises
    ------
    ValueError
        Empty input, k >= d, non-finite values, or all-zero embeddings.

    References
    ----------
    Chuang et al., "Debiasing Vision-Language Models via Biased Prompts", 2023, Sec. 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> V = np.eye(4)[:1]  # one spurious direction e_0 in R^4
    >>> projection_matrix(V).diagonal()
    array([0., 1., 1., 1.])
    """
    V, spec = _spurious_work(spurious_embeddings)
    B = _basis(V, rtol, _input_eps(spec))
    P0 = torch.eye(V.shape[1], dtype=V.dtype, device=V.device) - B @ B.T
    return spec.back(0.5 * (P0 + P0.T))


def gather_pairs(
    candidate_embeddings: ArrayLike, index_pairs: Sequence[Sequence[int]]
) -> ArrayLike:
    """Stack positive pairs from candidate-prompt embeddings and index pairs (the official ``S``).

    Parameters
    ----------
    candidate_embeddings : array-like, shape (n, d)
        Embeddings of the candidate prompts (class x attribute combinations).
    index_pairs : sequence of (i, j)
        Pairs of rows that differ only in the spurious attribute, ``i != j``.

    Returns
    -------
    pairs : array, shape (S, 2, d)
        ``pairs[s] = (z_i, z_j)``, in the input's array type.
    """
    Z, spec = as_work_tensor(candidate_embeddings, "candidate_embeddings")
    if Z.ndim != 2:
        raise ValueError(f"candidate_embeddings must have shape (n, d), got {tuple(Z.shape)}")
    try:
        raw = np.asarray(index_pairs)
    except (TypeError, ValueError):
        raise TypeError("index_pairs must be a sequence of integer pairs (i, j)") from None
    if raw.size == 0:
        raise ValueError("index_pairs is empty: give at least one positive pair")
    if raw.dtype.kind not in "iu":  # 1.7 must not become row 1
        raise TypeError(f"index_pairs must hold integers, got dtype {raw.dtype}")
    idx = raw.astype(np.int64)
    if idx.ndim != 2 or idx.shape[1] != 2:
        raise ValueError(f"index_pairs must have shape (S, 2), got {idx.shape}")
    n = Z.shape[0]
    if (idx < 0).any() or (idx >= n).any():
        raise ValueError(f"index_pairs has indices outside [0, {n}) for {n} candidate embeddings")
    if (idx[:, 0] == idx[:, 1]).any():
        raise ValueError("index_pairs contains a pair (i, i): a prompt cannot pair with itself")
    sel = torch.from_numpy(idx).to(Z.device)
    return spec.back(torch.stack([Z[sel[:, 0]], Z[sel[:, 1]]], dim=1))


def _pairs_work(positive_pairs: ArrayLike) -> tuple[Tensor, OutputSpec]:
    if isinstance(positive_pairs, tuple) and len(positive_pairs) == 2:
        za, spec = as_work_tensor(positive_pairs[0], "positive_pairs[0]")
        zb, _ = as_work_tensor(positive_pairs[1], "positive_pairs[1]")
        if za.ndim != 2 or za.shape != zb.shape:
            raise ValueError(
                "positive_pairs as (z_a, z_b) needs two arrays of the same shape (S, d), got "
                f"{tuple(za.shape)} and {tuple(zb.shape)}"
            )
        Z = torch.stack([za, zb.to(za.device)], dim=1)
    else:
        Z, spec = as_work_tensor(positive_pairs, "positive_pairs")
    if Z.numel() == 0:
        raise ValueError("positive_pairs is empty: give at least one positive pair")
    if Z.ndim != 3 or Z.shape[1] != 2:
        raise ValueError(
            f"positive_pairs must have shape (S, 2, d) or be a tuple (z_a, z_b), got {tuple(Z.shape)}"
        )
    if Z.shape[0] == 0:
        raise ValueError("positive_pairs is empty: give at least one positive pair")
    check_finite(Z, "positive_pairs")
    return Z, spec


def _M(Z: Tensor) -> Tensor:
    D = Z[:, 0] - Z[:, 1]  # (S, d)
    M = D.T @ D / D.shape[0]
    return 0.5 * (M + M.T)


def _back_finite(x: Tensor, spec: OutputSpec, name: str) -> ArrayLike:
    """``spec.back(x)``, or a ValueError naming ``name`` when the result overflows its dtype."""
    out = spec.back(x)
    finite = torch.isfinite(out).all() if isinstance(out, Tensor) else np.isfinite(out).all()
    if not bool(finite):
        raise ValueError(
            f"the result overflows {spec.dtype}: {name} are far from unit norm (normalise the "
            "embeddings, as the paper does)"
        )
    return out


def calibration_matrix(positive_pairs: ArrayLike) -> ArrayLike:
    r"""Mean outer product of positive-pair differences, the :math:`M` of the calibration loss.

    .. math:: M = \frac{1}{|S|} \sum_{(i, j) \in S} (z_i - z_j)(z_i - z_j)^\top

    Parameters
    ----------
    positive_pairs : array-like, shape (S, 2, d), or tuple (z_a, z_b) of arrays (S, d)
        Embeddings of prompts that differ only in the spurious attribute
        ("A photo of a male doctor." / "A photo of a female doctor."), see :func:`gather_pairs`.

    Returns
    -------
    M : array, shape (d, d)
        Symmetric positive semi-definite, rank <= S.

    References
    ----------
    Chuang et al., 2023, Sec. 3.2; ``get_M`` in the official code.
    """
    Z, spec = _pairs_work(positive_pairs)
    return _back_finite(_M(Z), spec, "positive_pairs")


def _check_lam(lam: float) -> float:
    return check_real("lam", lam, low=0.0)


def _work_inputs(
    spurious_embeddings: ArrayLike | None, positive_pairs: ArrayLike
) -> tuple[Tensor | None, Tensor, OutputSpec]:
    Z, spec = _pairs_work(positive_pairs)
    if spurious_embeddings is None:
        return None, Z, spec
    V, spec = _spurious_work(spurious_embeddings)
    if V.shape[1] != Z.shape[2]:
        raise ValueError(
            f"dimension mismatch: spurious_embeddings have d={V.shape[1]}, "
            f"positive_pairs have d={Z.shape[2]}"
        )
    return V, Z.to(V.device), spec


def calibrated_projection(
    spurious_embeddings: ArrayLike | None,
    positive_pairs: ArrayLike,
    *,
    lam: float = 1000.0,
    rtol: float | None = None,
) -> ArrayLike:
    r"""Calibrated projection :math:`P^* = P_0 (I + \lambda M)^{-1}`.

    :math:`P^*` minimises

    .. math:: \|P - P_0\|_F^2 + \frac{\lambda}{|S|} \sum_{(i,j) \in S} \|P z_i - P z_j\|^2,

    whose stationarity condition is :math:`(P - P_0) + \lambda P M = 0`. Since :math:`P_0` and
    :math:`M` are symmetric, :math:`P^{*\top} = (I + \lambda M)^{-1} P_0` is computed with one
    ``linalg.solve``; no inverse is formed.

    Parameters
    ----------
    spurious_embeddings : array-like, shape (k, d), or None
        Spurious prompt embeddings for :math:`P_0` (:func:`projection_matrix`). ``None`` takes
        :math:`P_0 = I`, i.e. :math:`(I + \lambda M)^{-1}`: the official Stable Diffusion variant.
    positive_pairs : array-like, shape (S, 2, d), or tuple (z_a, z_b)
        Positive pairs, see :func:`calibration_matrix`.
    lam : float, default 1000.0
        Calibration strength :math:`\lambda >= 0` (official: 1000 for zero-shot CLIP,
        500 for Stable Diffusion). ``lam=0`` returns :math:`P_0`.
    rtol : float, optional
        Rank tolerance for :math:`P_0`, see :func:`spurious_basis`.

    Returns
    -------
    P : array, shape (d, d)
        Applied to row embeddings as ``z @ P.T``; in the type of ``spurious_embeddings``
        (of ``positive_pairs`` when that is None).

    References
    ----------
    Chuang et al., 2023, Sec. 3.2, Eq. for :math:`P^*`; ``main.py`` of the official code
    (``P = P0 @ inv(lam * M + I)``).
    """
    lam = _check_lam(lam)
    V, Z, spec = _work_inputs(spurious_embeddings, positive_pairs)
    d = Z.shape[2]
    eye = torch.eye(d, dtype=Z.dtype, device=Z.device)
    P0 = eye if V is None else eye - (B := _basis(V, rtol, _input_eps(spec))) @ B.T
    G = eye + lam * _M(Z)
    if not bool(torch.isfinite(G).all()):
        raise ValueError(
            "lam * M overflows float64: positive_pairs are far from unit norm (normalise the "
            "embeddings, as the paper does) or lam is too large"
        )
    P = torch.linalg.solve(G, 0.5 * (P0 + P0.T)).T
    return _back_finite(P, spec, "positive_pairs")


@dataclass(frozen=True)
class LowRankProjection:
    r"""Factored :math:`P^* = (I - B B^\top)(I - U \,\mathrm{diag}(w)\, U^\top)`.

    With :math:`M = U \mathrm{diag}(s) U^\top` (rank r <= |S|), Woodbury gives
    :math:`(I + \lambda M)^{-1} = I - U \mathrm{diag}(\lambda s / (1 + \lambda s)) U^\top`, so
    applying :math:`P^*` costs O(d (k + r)) per vector instead of O(d^2).

    Attributes
    ----------
    spurious_basis : Tensor, shape (d, r0)
        Orthonormal basis of the spurious prompts (empty with r0 = 0 for no projection).
    pair_basis : Tensor, shape (d, r)
        Eigenvectors of M with non-zero eigenvalue.
    shrink : Tensor, shape (r,)
        :math:`w = \lambda s / (1 + \lambda s)`.
    """

    spurious_basis: Tensor
    pair_basis: Tensor
    shrink: Tensor

    def apply(self, x: Tensor) -> Tensor:
        """``x @ P*.T`` for row vectors ``x`` of shape (..., d), in ``x``'s dtype and device."""
        U = self.pair_basis.to(device=x.device, dtype=x.dtype)
        w = self.shrink.to(device=x.device, dtype=x.dtype)
        B = self.spurious_basis.to(device=x.device, dtype=x.dtype)
        y = x - ((x @ U) * w) @ U.T
        return y - (y @ B) @ B.T

    def dense(self) -> Tensor:
        """The (d, d) matrix, float64 (for checks; the point of the factors is not to form it)."""
        d = self.pair_basis.shape[0]
        eye = torch.eye(d, dtype=torch.float64, device=self.pair_basis.device)
        return self.apply(eye).T


def low_rank_projection(
    spurious_embeddings: ArrayLike | None,
    positive_pairs: ArrayLike,
    *,
    lam: float = 1000.0,
    rtol: float | None = None,
) -> LowRankProjection:
    """Factors of :func:`calibrated_projection` for cheap application to many vectors.

    Same parameters as :func:`calibrated_projection`; returns a :class:`LowRankProjection`
    whose ``apply(x)`` equals ``x @ calibrated_projection(...).T`` (float64 factors, torch).
    """
    lam = _check_lam(lam)
    V, Z, spec = _work_inputs(spurious_embeddings, positive_pairs)
    d = Z.shape[2]
    if V is None:
        B = torch.zeros(d, 0, dtype=Z.dtype, device=Z.device)
    else:
        B = _basis(V, rtol, _input_eps(spec))
    D = (Z[:, 0] - Z[:, 1]) / Z.shape[0] ** 0.5  # M = D^T D
    _, sig, vh = torch.linalg.svd(D, full_matrices=False)
    keep = sig > max(D.shape) * float(torch.finfo(torch.float64).eps) * max(float(sig[0]), 1e-300)
    s = sig[keep] ** 2
    return LowRankProjection(B, vh[keep].T.contiguous(), lam * s / (1.0 + lam * s))
