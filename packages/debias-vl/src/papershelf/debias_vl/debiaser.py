"""A scikit-learn transformer around the calibrated projection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from papershelf.core.validation import check_bool
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


class Debiaser(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    r"""Debias text embeddings with the calibrated projection of Chuang et al. (2023).

    ``fit`` builds :math:`P^* = P_0 (I + \lambda M)^{-1}` from spurious prompts and positive
    pairs; ``transform`` maps embeddings :math:`z \mapsto P^* z` (re-normalised by default).

    Two ways to fit, one estimator:

    * the paper's form, ``fit(spurious_embeddings, positive_pairs)`` (pairs of shape
      (S, 2, d) or a tuple ``(z_a, z_b)`` in the second argument);
    * scikit-learn's form, ``Debiaser(spurious=V, pairs=Z).fit(X)``: the prompts are
      parameters, ``X`` (the embeddings to debias later) only fixes d, and the estimator works
      in ``Pipeline``, ``GridSearchCV`` (e.g. over ``lam``), ``clone`` and ``check_estimator``.
      With neither ``spurious`` nor ``pairs`` the map is the identity (then L2 normalisation).

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
    spurious : array-like, shape (k, d), optional
        Spurious prompt embeddings for the scikit-learn form of ``fit``.
    pairs : array-like, shape (S, 2, d), or tuple (z_a, z_b), optional
        Positive pairs for the scikit-learn form of ``fit``.

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
        spurious: ArrayLike | None = None,
        pairs: ArrayLike | None = None,
    ) -> None:
        self.lam = lam
        self.use_projection = use_projection
        self.normalize = normalize
        self.low_rank = low_rank
        self.rtol = rtol
        self.spurious = spurious
        self.pairs = pairs

    def fit(self, X: ArrayLike | None = None, y: ArrayLike | None = None) -> Debiaser:
        """Fit :math:`P^*`.

        Parameters
        ----------
        X : array-like, shape (k, d) or (n, d), or None
            In the paper's form (``y`` holds the pairs): the spurious prompt embeddings (may be
            None when ``use_projection=False``). In scikit-learn's form: any embeddings of
            dimension d (only their width is used; the prompts come from ``spurious`` and
            ``pairs``).
        y : array-like, shape (S, 2, d), or tuple (z_a, z_b), optional
            The positive pairs in the paper's form (see
            :func:`~papershelf.debias_vl.gather_pairs`); labels (1-D) or None are ignored.

        Returns
        -------
        self
        """
        lam = _check_lam(self.lam)
        use_projection = check_bool("use_projection", self.use_projection)
        check_bool("normalize", self.normalize)
        check_bool("low_rank", self.low_rank)
        if self.rtol is not None:
            from papershelf.core.validation import check_real

            check_real("rtol", self.rtol, low=0.0)
        if _is_pairs(y):
            spurious, pairs = X, y
            if use_projection and spurious is None:
                raise ValueError("spurious_embeddings is None but use_projection=True")
        else:
            spurious, pairs = self.spurious, self.pairs
            d = None
            if X is not None and not isinstance(X, torch.Tensor):
                X = validate_data(self, X, reset=True, dtype=(np.float64, np.float32))
                d = X.shape[1]
            elif isinstance(X, torch.Tensor):
                check_finite(X.detach(), "X")
                d = int(X.shape[-1])
                self.n_features_in_ = d
            if spurious is None and pairs is None:
                if d is None:
                    raise ValueError("fit needs X (or spurious/pairs) to know the dimension d")
                self._fit_identity(d)
                return self
        spurious = spurious if use_projection else None
        if pairs is None:  # P0 alone: lam has nothing to calibrate
            self.P_ = projection_matrix(spurious, rtol=self.rtol)
            self.P0_ = self.P_
            self.factors_: LowRankProjection | None = None
        else:
            self.P_ = calibrated_projection(spurious, pairs, lam=lam, rtol=self.rtol)
            self.P0_ = None if spurious is None else projection_matrix(spurious, rtol=self.rtol)
            self.factors_ = None
            if self.low_rank:
                self.factors_ = low_rank_projection(spurious, pairs, lam=lam, rtol=self.rtol)
        d_fit = int(self.P_.shape[0])
        if getattr(self, "n_features_in_", d_fit) != d_fit and not _is_pairs(y):
            raise ValueError(
                f"X has {self.n_features_in_} features, but the prompts have d={d_fit}"
            )
        self.n_features_in_ = d_fit
        return self

    def _fit_identity(self, d: int) -> None:
        self.P_ = np.eye(d)
        self.P0_ = None
        self.factors_ = None
        self.n_features_in_ = d

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
        check_is_fitted(self, "P_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

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
        x, spec = _input(embeddings, self.n_features_in_, self)
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
        x, spec = _input(embeddings, self.n_features_in_, self)
        out = (
            self.factors_.apply(x)
            if self.factors_ is not None
            else (x @ torch.as_tensor(self.P_).to(device=x.device, dtype=x.dtype).T)
        )
        if self.normalize:
            out = out / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
        return spec.back(out) if not spec.is_torch else out

    def fit_transform(
        self, X: ArrayLike | None = None, y: ArrayLike | None = None, *args: Any, **fit_params: Any
    ) -> ArrayLike:
        """Fit, then transform.

        ``fit_transform(X)`` / ``fit_transform(X, labels)`` (scikit-learn's form) transforms
        ``X``; the paper's form ``fit_transform(spurious, pairs, embeddings)`` transforms
        ``embeddings``.
        """
        if args:
            (embeddings,) = args
            return self.fit(X, y).transform(embeddings)
        return self.fit(X, y).transform(X)


def _is_pairs(y: object) -> bool:
    """Whether ``fit``'s second argument holds positive pairs (the paper's form)."""
    if y is None:
        return False
    if isinstance(y, tuple) and len(y) == 2:
        return True
    ndim = getattr(y, "ndim", None)
    if ndim is None and isinstance(y, list):
        ndim = np.asarray(y).ndim
    return ndim == 3


def _input(embeddings: ArrayLike, d: int, est: Debiaser) -> tuple[torch.Tensor, OutputSpec]:
    # Torch inputs are processed in their own dtype (fast path for float32 token states);
    # numpy inputs go through float64 and come back in their dtype. 2-D array-likes are checked
    # as scikit-learn checks them (feature count, NaN, object dtype, 1-D input rejected).
    if not isinstance(embeddings, torch.Tensor) and getattr(embeddings, "ndim", 2) <= 2:
        # float16 listed too: otherwise scikit-learn casts it to float64 and the documented
        # "same dtype as embeddings" breaks for half-precision CLIP features
        embeddings = validate_data(
            est, embeddings, reset=False, dtype=(np.float64, np.float32, np.float16)
        )
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
