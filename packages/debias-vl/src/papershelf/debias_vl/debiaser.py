"""A scikit-learn-style estimator around the calibrated projection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from papershelf.debias_vl._backend import ArrayLike, OutputSpec, as_work_tensor, check_finite
from papershelf.debias_vl.projection import (
    LowRankProjection,
    _check_lam,
    calibrated_projection,
    gather_pairs,
    low_rank_projection,
    projection_matrix,
)

__all__ = ["Debiaser"]


class Debiaser:
    r"""Debias text embeddings with the calibrated projection of Chuang et al. (2023).

    ``fit`` builds :math:`P^* = P_0 (I + \lambda M)^{-1}` from spurious prompts and positive
    pairs; ``transform`` maps embeddings :math:`z \mapsto P^* z` (re-normalised by default).

    Parameters
    ----------
    lam : float, default 1000.0
        Calibration strength :math:`\lambda \ge 0`; 0 gives the plain projection :math:`P_0`.
        The official code uses 1000 for zero-shot CLIP and 500 for Stable Diffusion.
    use_projection : bool, default True
        Include :math:`P_0`. ``False`` gives :math:`(I + \lambda M)^{-1}` only, the official
        Stable Diffusion recipe (then ``spurious_embeddings`` may be None).
    normalize : bool, default True
        L2-normalise the output of :meth:`transform` (zero-shot classification). Set False for
        token states fed to a diffusion model.
    low_rank : bool, default False
        Apply :math:`P^*` through its factors (O(d (k + r)) per vector, see
        :class:`~papershelf.debias_vl.projection.LowRankProjection`) instead of a dense d x d
        product. Faster for many vectors when k and |S| are small.
    rtol : float, optional
        Rank tolerance for the spurious basis.

    Attributes
    ----------
    P_ : array, shape (d, d)
        The fitted :math:`P^*` (type of the fit inputs).
    P0_ : array, shape (d, d) or None
        The projection :math:`P_0` (None when ``use_projection=False``).
    factors_ : LowRankProjection or None
        Set when ``low_rank=True``.
    n_features_in_ : int
        The embedding dimension d.

    References
    ----------
    Chuang et al., "Debiasing Vision-Language Models via Biased Prompts", arXiv:2302.00070.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spurious = rng.normal(size=(2, 16))
    >>> pairs = rng.normal(size=(5, 2, 16))
    >>> deb = Debiaser(lam=100.0).fit(spurious, pairs)
    >>> deb.transform(rng.normal(size=(3, 16))).shape
    (3, 16)
    """

    def __init__(
        self,
        lam: float = 1000.0,
        *,
        use_projection: bool = True,
        normalize: bool = True,
        low_rank: bool = False,
        rtol: float | None = None,
    ) -> None:
        self.lam = lam
        self.use_projection = use_projection
        self.normalize = normalize
        self.low_rank = low_rank
        self.rtol = rtol

    def fit(self, spurious_embeddings: ArrayLike | None, positive_pairs: ArrayLike) -> Debiaser:
        """Fit :math:`P^*`.

        Parameters
        ----------
        spurious_embeddings : array-like, shape (k, d), or None
            Spurious prompt embeddings (ignored, and may be None, when ``use_projection=False``).
        positive_pairs : array-like, shape (S, 2, d), or tuple (z_a, z_b)
            Positive pairs (see :func:`~papershelf.debias_vl.gather_pairs`).

        Returns
        -------
        self
        """
        _check_lam(self.lam)
        if self.use_projection and spurious_embeddings is None:
            raise ValueError("spurious_embeddings is None but use_projection=True")
        spurious = spurious_embeddings if self.use_projection else None
        self.P_ = calibrated_projection(spurious, positive_pairs, lam=self.lam, rtol=self.rtol)
        self.P0_ = None if spurious is None else projection_matrix(spurious, rtol=self.rtol)
        self.factors_: LowRankProjection | None = None
        if self.low_rank:
            self.factors_ = low_rank_projection(
                spurious, positive_pairs, lam=self.lam, rtol=self.rtol
            )
        self.n_features_in_ = int(self.P_.shape[0])
        return self

    def fit_texts(
        self,
        encode: Callable[[Sequence[str]], Any],
        spurious_prompts: Sequence[str] | None,
        candidate_prompts: Sequence[str],
        index_pairs: Sequence[Sequence[int]],
    ) -> Debiaser:
        """Fit from prompts: ``encode(texts) -> (n, d)`` embeddings (e.g. a bound
        :func:`~papershelf.debias_vl.clip_text_features`), positive pairs given as index pairs
        into ``candidate_prompts`` (see :func:`~papershelf.debias_vl.pairs_from_grid`)."""
        spurious = None
        if self.use_projection:
            if not spurious_prompts:
                raise ValueError("spurious_prompts is empty but use_projection=True")
            spurious = encode(list(spurious_prompts))
        if not candidate_prompts:
            raise ValueError("candidate_prompts is empty")
        pairs = gather_pairs(encode(list(candidate_prompts)), index_pairs)
        return self.fit(spurious, pairs)

    def _check_fitted(self) -> None:
        if not hasattr(self, "P_"):
            raise RuntimeError("this Debiaser is not fitted yet: call fit(...) first")

    def apply(self, embeddings: ArrayLike) -> ArrayLike:
        """The linear map only, ``embeddings @ P_.T``, without re-normalisation.

        Parameters
        ----------
        embeddings : array-like, shape (..., d)

        Returns
        -------
        array, shape (..., d), same type, dtype and device as ``embeddings``.
        """
        self._check_fitted()
        x, spec = _input(embeddings, self.n_features_in_)
        if self.factors_ is not None:
            out = self.factors_.apply(x)
        else:
            out = x @ torch.as_tensor(self.P_).to(device=x.device, dtype=x.dtype).T
        return spec.back(out) if not spec.is_torch else out

    def transform(self, embeddings: ArrayLike) -> ArrayLike:
        """Debias embeddings: ``P_ z`` for every row z, L2-normalised when ``normalize=True``.

        Parameters
        ----------
        embeddings : array-like, shape (..., d)
            E.g. normalised class-prompt embeddings (B, d) or token states (B, T, d).

        Returns
        -------
        array, shape (..., d), same type, dtype and device as ``embeddings``.
        """
        self._check_fitted()
        x, spec = _input(embeddings, self.n_features_in_)
        out = (
            self.factors_.apply(x)
            if self.factors_ is not None
            else (x @ torch.as_tensor(self.P_).to(device=x.device, dtype=x.dtype).T)
        )
        if self.normalize:
            out = out / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
        return spec.back(out) if not spec.is_torch else out

    def fit_transform(
        self,
        spurious_embeddings: ArrayLike | None,
        positive_pairs: ArrayLike,
        embeddings: ArrayLike,
    ) -> ArrayLike:
        """``fit(spurious_embeddings, positive_pairs).transform(embeddings)``."""
        return self.fit(spurious_embeddings, positive_pairs).transform(embeddings)

    def __repr__(self) -> str:
        return (
            f"Debiaser(lam={self.lam!r}, use_projection={self.use_projection!r}, "
            f"normalize={self.normalize!r}, low_rank={self.low_rank!r}, rtol={self.rtol!r})"
        )


def _input(embeddings: ArrayLike, d: int) -> tuple[torch.Tensor, OutputSpec]:
    # Torch inputs are processed in their own dtype (fast path for float32 token states);
    # numpy inputs go through float64 and come back in their dtype.
    if isinstance(embeddings, torch.Tensor):
        if not embeddings.is_floating_point():
            raise TypeError(f"embeddings must be a floating tensor, got dtype {embeddings.dtype}")
        x, spec = embeddings, OutputSpec(True, embeddings.dtype, embeddings.device)
    else:
        x, spec = as_work_tensor(embeddings, "embeddings")
    if x.ndim < 1 or x.shape[-1] != d:
        raise ValueError(
            f"embeddings must have shape (..., {d}) to match the fitted d={d}, got {tuple(x.shape)}"
        )
    check_finite(x, "embeddings")
    return x, spec
