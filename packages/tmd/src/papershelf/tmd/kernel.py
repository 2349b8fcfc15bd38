r"""TMD kernels and the paper's TMD-SVM, in scikit-learn style.

The kernel is :math:`k(G, G') = \exp(-\gamma \, \mathrm{TMD}(G, G'))`; it need not be positive
semi-definite, which libsvm accepts (as the official ``svc.py`` does).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from papershelf.tmd.distance import Weights, pairwise_tmd

__all__ = ["TMDSVC", "SplitResult", "TreeMoversKernel", "svm_split_accuracy"]


def _check_gamma(gamma: Any, name: str = "gamma") -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(gamma).__name__}")
    if not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"{name} must be positive and finite, got {gamma!r}")
    return float(gamma)


class TreeMoversKernel:
    r"""The kernel :math:`\exp(-\gamma\,\mathrm{TMD}^L_w)` between graphs, as a transformer.

    Parameters
    ----------
    gamma : float
        Kernel bandwidth :math:`\gamma > 0` (the paper's :math:`\lambda`).
    w, depth : see :func:`~papershelf.tmd.tmd`
    n_jobs, memoize : see :func:`~papershelf.tmd.pairwise_tmd`

    Attributes
    ----------
    graphs_ : list
        The graphs given to :meth:`fit` (the kernel's columns).

    Examples
    --------
    >>> import torch
    >>> from papershelf.tmd import TreeMoversKernel
    >>> g = (torch.ones(2, 1), torch.tensor([[0, 1], [1, 0]]))
    >>> TreeMoversKernel(gamma=0.1, depth=2).fit_transform([g, g]).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """

    def __init__(
        self,
        gamma: float = 0.1,
        *,
        w: Weights = 0.5,
        depth: int = 4,
        n_jobs: int | None = 1,
        memoize: bool | Literal["auto"] = "auto",
    ) -> None:
        self.gamma = gamma
        self.w = w
        self.depth = depth
        self.n_jobs = n_jobs
        self.memoize = memoize

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters (scikit-learn protocol)."""
        return {k: getattr(self, k) for k in ("gamma", "w", "depth", "n_jobs", "memoize")}

    def set_params(self, **params: Any) -> TreeMoversKernel:
        """Set hyperparameters (scikit-learn protocol)."""
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"invalid parameter {k!r} for TreeMoversKernel")
            setattr(self, k, v)
        return self

    def _distances(self, a: Sequence[Any], b: Sequence[Any] | None) -> np.ndarray:
        return pairwise_tmd(
            a, b, w=self.w, depth=self.depth, n_jobs=self.n_jobs, memoize=self.memoize
        )

    def fit(self, graphs: Sequence[Any], y: Any = None) -> TreeMoversKernel:
        """Remember ``graphs`` as the kernel's columns."""
        _check_gamma(self.gamma)
        self.graphs_ = list(graphs)
        if not self.graphs_:
            raise ValueError("graphs must hold at least one graph")
        return self

    def transform(self, graphs: Sequence[Any]) -> np.ndarray:
        """Kernel matrix, shape (len(graphs), len(graphs_))."""
        if not hasattr(self, "graphs_"):
            raise RuntimeError("TreeMoversKernel is not fitted: call fit first")
        return np.exp(-_check_gamma(self.gamma) * self._distances(graphs, self.graphs_))

    def fit_transform(self, graphs: Sequence[Any], y: Any = None) -> np.ndarray:
        """Fit, then the symmetric kernel matrix of ``graphs`` (each pair computed once)."""
        self.fit(graphs)
        return np.exp(-_check_gamma(self.gamma) * self._distances(self.graphs_, None))


def _permutations(n: int, count: int, random_state: Any) -> list[np.ndarray]:
    """``count`` random permutations of ``range(n)`` (Python's shuffle for a random.Random)."""
    if isinstance(random_state, random.Random):
        out = []
        for _ in range(count):
            idx = list(range(n))
            random_state.shuffle(idx)
            out.append(np.asarray(idx, dtype=np.intp))
        return out
    rng = np.random.default_rng(random_state)
    return [rng.permutation(n) for _ in range(count)]


class TMDSVC:
    r"""The paper's TMD-SVM: an SVM on the kernel :math:`\exp(-\gamma\,\mathrm{TMD})`.

    :math:`\gamma` is chosen from ``gammas`` as in the official ``svc.py``: over ``n_splits``
    random 90/10 splits of the training set, the one with the best summed validation accuracy
    (the first on ties), then a ``SVC(kernel="precomputed", C=C)`` is fitted on all of it.

    Parameters
    ----------
    w, depth : see :func:`~papershelf.tmd.tmd`
        The official scripts use ``w=0.5, depth=4``.
    gammas : sequence of float
        Candidate bandwidths (the official ``lams``: 0.01, 0.05, 0.1).
    C : float
        SVM regularisation.
    n_splits : int
        Random validation splits for choosing ``gamma``.
    validation_fraction : float
        Share of the training set held out in each split.
    metric : {"tmd", "precomputed"}
        ``"precomputed"``: ``fit`` takes a TMD matrix of shape (n, n) and ``predict`` one of
        shape (m, n) against the training graphs (reuse one :func:`pairwise_tmd` matrix
        across cross-validation folds).
    random_state : int, numpy Generator or random.Random, optional
        Seed of the validation splits. A :class:`random.Random` draws them exactly as the
        official ``svc.py`` does (``random.shuffle`` of the training indices, the first tenth
        held out), continuing its stream (see :func:`svm_split_accuracy`).
    n_jobs, memoize : see :func:`~papershelf.tmd.pairwise_tmd`

    Attributes
    ----------
    gamma_ : float
        The chosen bandwidth.
    validation_scores_ : ndarray, shape (len(gammas),)
        Mean validation accuracy of each candidate.
    svc_ : sklearn.svm.SVC
        The fitted SVM.
    classes_ : ndarray
        Class labels.

    References
    ----------
    Chuang & Jegelka, NeurIPS 2022, Section 6 (TMD-SVM on TU datasets).
    """

    def __init__(
        self,
        *,
        w: Weights = 0.5,
        depth: int = 4,
        gammas: Sequence[float] = (0.01, 0.05, 0.1),
        C: float = 1.0,
        n_splits: int = 10,
        validation_fraction: float = 0.1,
        metric: Literal["tmd", "precomputed"] = "tmd",
        random_state: int | np.random.Generator | random.Random | None = None,
        n_jobs: int | None = 1,
        memoize: bool | Literal["auto"] = "auto",
    ) -> None:
        self.w = w
        self.depth = depth
        self.gammas = gammas
        self.C = C
        self.n_splits = n_splits
        self.validation_fraction = validation_fraction
        self.metric = metric
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.memoize = memoize

    _PARAMS = (
        "w", "depth", "gammas", "C", "n_splits", "validation_fraction", "metric",
        "random_state", "n_jobs", "memoize",
    )  # fmt: skip

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters (scikit-learn protocol)."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> TMDSVC:
        """Set hyperparameters (scikit-learn protocol)."""
        for k, v in params.items():
            if k not in self._PARAMS:
                raise ValueError(f"invalid parameter {k!r} for TMDSVC")
            setattr(self, k, v)
        return self

    def _train_distances(self, X: Any) -> np.ndarray:
        if self.metric == "precomputed":
            d = np.asarray(X, dtype=np.float64)
            if d.ndim != 2 or d.shape[0] != d.shape[1]:
                raise ValueError(f"X must be a square TMD matrix, got shape {d.shape}")
            return d
        if self.metric != "tmd":
            raise ValueError(f"metric must be 'tmd' or 'precomputed', got {self.metric!r}")
        self.graphs_ = list(X)
        return pairwise_tmd(
            self.graphs_, w=self.w, depth=self.depth, n_jobs=self.n_jobs, memoize=self.memoize
        )

    def _test_distances(self, X: Any) -> np.ndarray:
        if not hasattr(self, "svc_"):
            raise RuntimeError("TMDSVC is not fitted: call fit first")
        if self.metric == "precomputed":
            d = np.asarray(X, dtype=np.float64)
            if d.ndim != 2 or d.shape[1] != self.n_train_:
                raise ValueError(f"X must have shape (m, {self.n_train_}), got {d.shape}")
            return d
        return pairwise_tmd(
            list(X), self.graphs_, w=self.w, depth=self.depth, n_jobs=self.n_jobs,
            memoize=self.memoize,
        )  # fmt: skip

    def fit(self, X: Any, y: Any) -> TMDSVC:
        """Choose ``gamma`` on random validation splits, then fit the SVM on all of ``X``.

        Parameters
        ----------
        X : sequence of graphs, length n, or ndarray, shape (n, n) when metric="precomputed"
        y : array-like, shape (n,)
        """
        from sklearn.svm import SVC

        gammas = [_check_gamma(g, "gammas") for g in self.gammas]
        if not gammas:
            raise ValueError("gammas must hold at least one value")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}"
            )
        if (
            isinstance(self.n_splits, bool)
            or not isinstance(self.n_splits, int)
            or self.n_splits < 1
        ):
            raise ValueError(f"n_splits must be a positive integer, got {self.n_splits!r}")
        dist = self._train_distances(X)
        labels = np.asarray(y)
        n = dist.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {labels.shape}")
        if len(np.unique(labels)) < 2:
            raise ValueError("y must hold at least two classes")
        n_val = max(1, int(n * self.validation_fraction))
        scores = np.zeros(len(gammas))
        for perm in _permutations(n, self.n_splits, self.random_state):
            val, tr = perm[:n_val], perm[n_val:]
            if len(np.unique(labels[tr])) < 2:
                continue
            for k, g in enumerate(gammas):
                model = SVC(kernel="precomputed", C=self.C)
                model.fit(np.exp(-g * dist[np.ix_(tr, tr)]), labels[tr])
                pred = model.predict(np.exp(-g * dist[np.ix_(val, tr)]))
                scores[k] += np.mean(pred == labels[val])
        self.validation_scores_ = scores / self.n_splits
        self.gamma_ = gammas[int(np.argmax(scores))]
        self.svc_ = SVC(kernel="precomputed", C=self.C).fit(np.exp(-self.gamma_ * dist), labels)
        self.classes_ = self.svc_.classes_
        self.n_train_ = n
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """SVM decision values for graphs (or a TMD matrix against the training graphs)."""
        return np.asarray(
            self.svc_.decision_function(np.exp(-self.gamma_ * self._test_distances(X)))
        )

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (m,)."""
        return np.asarray(self.svc_.predict(np.exp(-self.gamma_ * self._test_distances(X))))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


class SplitResult(NamedTuple):
    """One run of the TMD-SVM protocol: test accuracy, chosen bandwidth, validation scores."""

    accuracy: float
    gamma: float
    validation_scores: tuple[float, ...]  # mean validation accuracy of each candidate gamma


def svm_split_accuracy(
    dist: Any,
    y: Any,
    seed: int,
    *,
    gammas: Sequence[float] = (0.01, 0.05, 0.1),
    C: float = 1.0,
    n_splits: int = 10,
) -> SplitResult:
    r"""One run of the paper's TMD-SVM evaluation (the official ``svc.py --rs seed``).

    The graphs are shuffled with ``random.Random(seed)``; the first ``n // 10`` are the test
    set, the rest the training set. :math:`\gamma` is chosen among ``gammas`` on ``n_splits``
    random 90/10 splits of the training set drawn from the same stream (:class:`TMDSVC` with a
    :class:`random.Random`), then ``SVC(kernel="precomputed", C=C)`` on
    :math:`\exp(-\gamma\,\mathrm{TMD})` is fitted on the training set and scored on the test
    set. The splits are the ones ``svc.py`` draws with ``random.seed(seed)``, so the accuracies
    equal the official script's on the same TMD matrix (tested).

    Parameters
    ----------
    dist : array-like, shape (n, n)
        TMD matrix of the whole dataset (:func:`~papershelf.tmd.pairwise_tmd`; the paper:
        ``w=0.5, depth=4``), in dataset order.
    y : array-like, shape (n,)
        Class labels.
    seed : int
        The run's seed (``svc.py --rs``); the paper repeats over seeds.
    gammas, C, n_splits
        As in :class:`TMDSVC` (the official values are the defaults).

    Returns
    -------
    SplitResult
        ``accuracy`` on the held-out tenth, the chosen ``gamma`` and the mean validation
        accuracy of each candidate (``svc.py``'s ``best_k_count / 10``).

    References
    ----------
    Chuang & Jegelka, NeurIPS 2022, Section 6; chingyaoc/TMD ``svc.py``.
    """
    d = np.asarray(dist, dtype=np.float64)
    labels = np.asarray(y)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be a square TMD matrix, got shape {d.shape}")
    n = d.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"y must have shape ({n},), got {labels.shape}")
    if n < 10:
        raise ValueError(f"the 90/10 protocol needs at least 10 graphs, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rnd = random.Random(int(seed))
    idx = list(range(n))
    rnd.shuffle(idx)
    n_test = n // 10
    test, train = np.asarray(idx[:n_test]), np.asarray(idx[n_test:])
    model = TMDSVC(metric="precomputed", gammas=gammas, C=C, n_splits=n_splits, random_state=rnd)
    model.fit(d[np.ix_(train, train)], labels[train])
    return SplitResult(
        model.score(d[np.ix_(test, train)], labels[test]),
        float(model.gamma_),
        tuple(float(v) for v in model.validation_scores_),
    )
