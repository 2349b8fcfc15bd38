r"""TMD kernels and the paper's TMD-SVM as scikit-learn estimators.

The kernel is :math:`k(G, G') = \exp(-\gamma \, \mathrm{TMD}(G, G'))`; it need not be positive
semi-definite, which libsvm accepts (as the official ``svc.py`` does).

Both estimators follow the scikit-learn protocol (``BaseEstimator`` with the classifier or
transformer mixin): parameters are stored untouched by ``__init__`` and validated in ``fit``,
fitted attributes end with an underscore, methods called before ``fit`` raise
``NotFittedError``, and they work inside ``cross_val_score``, ``GridSearchCV`` and
``Pipeline``. Their inputs are graphs (a sequence of PyG ``Data``, ``(x, edge_index)`` pairs
or networkx graphs, or a PyG ``Batch``), or, with ``metric="precomputed"``, TMD matrices
(tagged ``pairwise`` so that scikit-learn's splitters cut the rows and columns of a square
matrix together).
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
    from sklearn.svm import SVC
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as err:  # pragma: no cover - exercised in an environment without sklearn
    raise ImportError(
        "TMDSVC, TreeMoversKernel and svm_split_accuracy need scikit-learn: "
        'pip install "papershelf-tmd[sklearn]"'
    ) from err

from papershelf.core.validation import check_choice, check_int, check_real
from papershelf.tmd.distance import Weights, _check_depth, _check_n_jobs, _check_weights
from papershelf.tmd.distance import pairwise_tmd as _pairwise_tmd
from papershelf.tmd.graphs import _is_batch, _is_one_graph

__all__ = ["TMDSVC", "SplitResult", "TreeMoversKernel", "svm_split_accuracy"]

_METRICS = ("tmd", "precomputed")


def _check_memoize(memoize: Any) -> bool | str:
    if isinstance(memoize, (bool, np.bool_)):
        return bool(memoize)
    if isinstance(memoize, str) and memoize == "auto":
        return memoize
    raise ValueError(f"memoize must be True, False or 'auto', got {memoize!r}")


def _graph_list(X: Any) -> list[Any]:
    """The graphs of ``X`` as a list (a PyG Batch is split); clear errors for non-graphs."""
    if _is_batch(X):
        return list(X.to_data_list())
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.kind in "fiub":
        raise TypeError(
            "X must be a sequence of graphs, got a numeric array of shape "
            f"{X.shape}; for a TMD matrix use metric='precomputed'"
        )
    if isinstance(X, (str, bytes)) or not (hasattr(X, "__len__") and hasattr(X, "__getitem__")):
        raise TypeError(f"X must be a sequence of graphs, got {type(X).__name__}")
    if _is_one_graph(X):
        raise TypeError(f"X must be a sequence of graphs, got one graph ({type(X).__name__})")
    graphs = [X[i] for i in range(len(X))]
    if not graphs:
        raise ValueError("X must hold at least one graph")
    return graphs


def _check_distances(d: np.ndarray, name: str = "X") -> np.ndarray:
    if np.any(d < 0):
        raise ValueError(
            f"Negative values in data passed to {name}: a precomputed TMD matrix holds "
            f"non-negative distances, got min {d.min():.3g}"
        )
    return d


class TreeMoversKernel(TransformerMixin, BaseEstimator):
    r"""The kernel :math:`\exp(-\gamma\,\mathrm{TMD}^L_w)` between graphs, as a transformer.

    ``fit(graphs)`` remembers the graphs (the kernel's columns); ``transform(graphs)`` gives
    the kernel matrix against them, ready for ``SVC(kernel="precomputed")`` in a
    ``Pipeline``.

    Parameters
    ----------
    gamma : float
        Kernel bandwidth :math:`\gamma > 0` (the paper's :math:`\lambda`).
    w : float or sequence of float
        TMD weights (see :func:`~papershelf.tmd.tmd`; the official scripts use 0.5).
    depth : int
        TMD depth ``L`` >= 1.
    metric : {"tmd", "precomputed"}
        ``"tmd"``: inputs are graphs. ``"precomputed"``: ``fit`` takes a square TMD matrix
        (n, n) and ``transform`` a matrix (m, n) against the same training graphs (compute
        :func:`~papershelf.tmd.pairwise_tmd` once, then tune ``gamma`` on it).
    n_jobs : int or None
        joblib workers for the distances (see :func:`~papershelf.tmd.pairwise_tmd`).
    memoize : bool or "auto"
        See :func:`~papershelf.tmd.pairwise_tmd`.

    Attributes
    ----------
    graphs_ : list
        The graphs given to :meth:`fit` (``metric="tmd"``).
    n_features_in_ : int
        Training graphs: columns of the TMD matrix (``metric="precomputed"`` only).

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
        metric: Literal["tmd", "precomputed"] = "tmd",
        n_jobs: int | None = None,
        memoize: bool | Literal["auto"] = "auto",
    ) -> None:
        self.gamma = gamma
        self.w = w
        self.depth = depth
        self.metric = metric
        self.n_jobs = n_jobs
        self.memoize = memoize

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if self.metric == "precomputed":
            tags.input_tags.pairwise = True
            tags.input_tags.positive_only = True  # distances
        else:  # graphs, not a 2-d array of features
            tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags

    def _settings(self) -> dict[str, Any]:
        depth = _check_depth(self.depth)
        return {
            "gamma": check_real("gamma", self.gamma, low=0.0, inclusive=False),
            "w": _check_weights(self.w, depth).tolist(),
            "depth": depth,
            "metric": check_choice("metric", self.metric, _METRICS),
            "n_jobs": _check_n_jobs(self.n_jobs),
            "memoize": _check_memoize(self.memoize),
        }

    def _distances(self, a: list[Any], b: list[Any] | None, s: dict[str, Any]) -> np.ndarray:
        return _pairwise_tmd(
            a, b, w=s["w"], depth=s["depth"], n_jobs=s["n_jobs"], memoize=s["memoize"]
        )

    def fit(self, X: Any, y: Any = None) -> TreeMoversKernel:
        """Remember the graphs ``X`` (or the size of a precomputed square TMD matrix).

        Parameters
        ----------
        X : sequence of graphs, length n; or ndarray (n, n) when ``metric="precomputed"``
        y : ignored
        """
        s = self._settings()
        self._fit(X, s)
        return self

    def _fit(self, X: Any, s: dict[str, Any]) -> np.ndarray | None:
        if s["metric"] == "precomputed":
            d = validate_data(self, X, reset=True, dtype=np.float64)
            if d.shape[0] != d.shape[1]:
                raise ValueError(f"X must be a square TMD matrix, got shape {d.shape}")
            return _check_distances(d)
        self.graphs_ = _graph_list(X)
        return None

    def transform(self, X: Any) -> np.ndarray:
        """Kernel matrix against the fitted graphs.

        Parameters
        ----------
        X : sequence of graphs, length m; or ndarray (m, n) when ``metric="precomputed"``

        Returns
        -------
        ndarray, shape (m, n)
        """
        check_is_fitted(self)
        s = self._settings()
        if s["metric"] == "precomputed":
            d = _check_distances(validate_data(self, X, reset=False, dtype=np.float64))
        else:
            if not hasattr(self, "graphs_"):
                raise ValueError("this TreeMoversKernel was fitted with metric='precomputed'")
            d = self._distances(_graph_list(X), self.graphs_, s)
        return np.exp(-s["gamma"] * d)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then the symmetric kernel matrix of ``X`` (each pair computed once)."""
        s = self._settings()
        d = self._fit(X, s)
        if d is None:
            d = self._distances(self.graphs_, None, s)
        return np.exp(-s["gamma"] * d)


def _permutations(n: int, count: int, random_state: Any) -> list[np.ndarray]:
    """``count`` random permutations of ``range(n)`` (Python's shuffle for a random.Random)."""
    if isinstance(random_state, random.Random):
        out = []
        for _ in range(count):
            idx = list(range(n))
            random_state.shuffle(idx)
            out.append(np.asarray(idx, dtype=np.intp))
        return out
    if isinstance(random_state, np.random.RandomState):
        return [random_state.permutation(n) for _ in range(count)]
    if random_state is not None and not isinstance(random_state, np.random.Generator):
        random_state = check_int("random_state", random_state, low=0)
    rng = np.random.default_rng(random_state)
    return [rng.permutation(n) for _ in range(count)]


class TMDSVC(ClassifierMixin, BaseEstimator):
    r"""The paper's TMD-SVM: an SVM on the kernel :math:`\exp(-\gamma\,\mathrm{TMD})`.

    :math:`\gamma` is chosen from ``gammas`` as in the official ``svc.py``: over ``n_splits``
    random 90/10 splits of the training set, the one with the best summed validation accuracy
    (the first on ties), then a ``SVC(kernel="precomputed", C=C)`` is fitted on all of it.

    A scikit-learn classifier: ``cross_val_score(TMDSVC(), graphs, y)``,
    ``GridSearchCV(TMDSVC(), {"depth": [2, 3, 4]})`` and ``is_classifier`` work on lists of
    graphs.

    Parameters
    ----------
    w : float or sequence of float
        TMD weights (see :func:`~papershelf.tmd.tmd`); the official scripts use 0.5.
    depth : int
        TMD depth; the official scripts use 4.
    gammas : sequence of float
        Candidate bandwidths, each > 0 (the official ``lams``: 0.01, 0.05, 0.1).
    C : float
        SVM regularisation, > 0.
    n_splits : int
        Random validation splits for choosing ``gamma``, >= 1.
    validation_fraction : float
        Share of the training set held out in each split, in (0, 1).
    metric : {"tmd", "precomputed"}
        ``"precomputed"``: ``fit`` takes a TMD matrix of shape (n, n) and ``predict`` one of
        shape (m, n) against the training graphs (reuse one :func:`pairwise_tmd` matrix
        across cross-validation folds; scikit-learn slices it as a pairwise input).
    random_state : int, numpy Generator or RandomState, random.Random, or None
        Seed of the validation splits. A :class:`random.Random` draws them exactly as the
        official ``svc.py`` does (``random.shuffle`` of the training indices, the first tenth
        held out), continuing its stream (see :func:`svm_split_accuracy`); like a numpy
        Generator, its state advances with every ``fit``.
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
    graphs_ : list
        The training graphs (``metric="tmd"``).
    n_features_in_ : int
        Training graphs: columns of the TMD matrix (``metric="precomputed"`` only).

    References
    ----------
    Chuang & Jegelka, NeurIPS 2022, Section 6 (TMD-SVM on TU datasets).

    Examples
    --------
    >>> from sklearn.model_selection import cross_val_score
    >>> from papershelf.tmd import TMDSVC, molecule_like_graphs
    >>> graphs = molecule_like_graphs(30, random_state=0)
    >>> y = [int(g.y) for g in graphs]
    >>> scores = cross_val_score(TMDSVC(depth=2, random_state=0), graphs, y, cv=3)
    >>> scores.shape
    (3,)
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
        n_jobs: int | None = None,
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        if self.metric == "precomputed":
            tags.input_tags.pairwise = True
            tags.input_tags.positive_only = True  # distances
        else:  # graphs, not a 2-d array of features
            tags.input_tags.two_d_array = False
        return tags

    def _settings(self) -> dict[str, Any]:
        depth = _check_depth(self.depth)
        if isinstance(self.gammas, (str, bytes, numbers.Number)) or not hasattr(
            self.gammas, "__len__"
        ):
            raise TypeError(f"gammas must be a sequence of numbers, got {self.gammas!r}")
        gammas = [
            check_real(f"gammas[{k}]", g, low=0.0, inclusive=False)
            for k, g in enumerate(self.gammas)
        ]
        if not gammas:
            raise ValueError("gammas must hold at least one value")
        return {
            "w": _check_weights(self.w, depth).tolist(),
            "depth": depth,
            "gammas": gammas,
            "C": check_real("C", self.C, low=0.0, inclusive=False),
            "n_splits": check_int("n_splits", self.n_splits, low=1),
            "validation_fraction": check_real(
                "validation_fraction",
                self.validation_fraction,
                low=0.0,
                high=1.0,
                inclusive=False,
            ),
            "metric": check_choice("metric", self.metric, _METRICS),
            "n_jobs": _check_n_jobs(self.n_jobs),
            "memoize": _check_memoize(self.memoize),
        }

    def _tmd(self, a: list[Any], b: list[Any] | None, s: dict[str, Any]) -> np.ndarray:
        return _pairwise_tmd(
            a, b, w=s["w"], depth=s["depth"], n_jobs=s["n_jobs"], memoize=s["memoize"]
        )

    def _test_distances(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        s = self._settings()
        if s["metric"] == "precomputed":
            return _check_distances(validate_data(self, X, reset=False, dtype=np.float64))
        if not hasattr(self, "graphs_"):
            raise ValueError("this TMDSVC was fitted with metric='precomputed'")
        return self._tmd(_graph_list(X), self.graphs_, s)

    def fit(self, X: Any, y: Any) -> TMDSVC:
        """Choose ``gamma`` on random validation splits, then fit the SVM on all of ``X``.

        Parameters
        ----------
        X : sequence of graphs, length n, or ndarray, shape (n, n) when metric="precomputed"
        y : array-like, shape (n,)
            Class labels (at least two classes).

        Returns
        -------
        self
        """
        s = self._settings()
        if s["metric"] == "precomputed":
            dist, labels = validate_data(self, X, y, reset=True, dtype=np.float64)
            if dist.shape[0] != dist.shape[1]:
                raise ValueError(f"X must be a square TMD matrix, got shape {dist.shape}")
            _check_distances(dist)
        else:
            graphs = _graph_list(X)
            if y is None:
                raise ValueError("TMDSVC requires y to be passed, but the target y is None")
            labels = column_or_1d(y, warn=True)
            if len(labels) != len(graphs):
                raise ValueError(f"y must have length {len(graphs)} (one label per graph), got "
                                 f"{len(labels)}")  # fmt: skip
            dist = self._tmd(graphs, None, s)
            self.graphs_ = graphs
        check_classification_targets(labels)
        n = dist.shape[0]
        if len(np.unique(labels)) < 2:
            raise ValueError("y must hold at least two classes, got one class")
        gammas = s["gammas"]
        n_val = max(1, int(n * s["validation_fraction"]))
        scores = np.zeros(len(gammas))
        for perm in _permutations(n, s["n_splits"], self.random_state):
            val, tr = perm[:n_val], perm[n_val:]
            if len(np.unique(labels[tr])) < 2:
                continue
            for k, g in enumerate(gammas):
                model = SVC(kernel="precomputed", C=s["C"])
                model.fit(np.exp(-g * dist[np.ix_(tr, tr)]), labels[tr])
                pred = model.predict(np.exp(-g * dist[np.ix_(val, tr)]))
                scores[k] += np.mean(pred == labels[val])
        self.validation_scores_ = scores / s["n_splits"]
        self.gamma_ = gammas[int(np.argmax(scores))]
        self.svc_ = SVC(kernel="precomputed", C=s["C"]).fit(np.exp(-self.gamma_ * dist), labels)
        self.classes_ = self.svc_.classes_
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """SVM decision values, shape (m,) for two classes or (m, n_classes).

        Parameters
        ----------
        X : sequence of graphs, length m, or ndarray (m, n) when metric="precomputed"
        """
        d = self._test_distances(X)
        return np.asarray(self.svc_.decision_function(np.exp(-self.gamma_ * d)))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels, shape (m,).

        Parameters
        ----------
        X : sequence of graphs, length m, or ndarray (m, n) when metric="precomputed"
        """
        d = self._test_distances(X)
        return np.asarray(self.svc_.predict(np.exp(-self.gamma_ * d)))


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
    rnd = random.Random(check_int("seed", seed))
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
