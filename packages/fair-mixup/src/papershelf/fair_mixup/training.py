"""Training with a fairness regulariser, following the official Adult protocol.

Protocol (official ``adult/main.py`` + ``utils.py``): every iteration draws a batch of
``batch_size`` rows from each sensitive group (DP) or from each (group, label) cell (EO),
without replacement; the loss is the BCE on both batches plus ``lam`` times the
regulariser; Adam(1e-3); 10 "epochs" of 100 iterations; after every epoch the model is
evaluated and, per run, the epoch (2-10) with the smallest *validation* gap is reported
(``select="min_val_gap"``), or simply the last one (``select="last"``).

Differences from the official loop (same estimator, faster and seeded): index tensors per
group/cell are built once (the official code recomputes ``np.where`` -- and for EO a Python
``set`` intersection over the whole training set -- every iteration), batches are indexed
on the data's device, and every draw comes from one ``torch.Generator``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor, nn

from papershelf.core import progress
from papershelf.core.validation import check_choice, check_int, check_real
from papershelf.fair_mixup.metrics import (
    average_precision,
    demographic_parity_gap,
    equalized_odds_gap,
)
from papershelf.fair_mixup.penalties import (
    AdversarialDebiasing,
    Model,
    _scores,
    dp_mixup_penalty,
    eo_mixup_penalty,
    gap_reg_penalty,
)

__all__ = [
    "AdultMLP",
    "GroupBatchSampler",
    "SweepRun",
    "TrainResult",
    "evaluate",
    "sweep",
    "train",
    "train_step",
]

logger = logging.getLogger(__name__)

TrainMethod = Literal["erm", "gapreg", "mixup", "manifold_mixup", "adversarial"]
METHODS: tuple[str, ...] = ("erm", "gapreg", "mixup", "manifold_mixup", "adversarial")


class AdultMLP(nn.Module):
    """The official Adult classifier: ``in -> 200 -> 200 -> 1``, ReLU, sigmoid output.

    ``features`` (first hidden layer) and ``head`` (the rest) split it for manifold mixup.

    Parameters
    ----------
    in_features : int
        Input width (85 with ``preprocessing="fixed"``, 120 with ``"official"``).
    hidden : int
        Width of both hidden layers (official: 200).
    generator : torch.Generator, optional
        Seeds the initialisation (PyTorch's default ``nn.Linear`` scheme); the global RNG
        otherwise.
    """

    def __init__(
        self, in_features: int, hidden: int = 200, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        in_features = check_int("in_features", in_features, low=1)
        hidden = check_int("hidden", hidden, low=1)
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)
        if generator is not None:
            for layer in (self.fc1, self.fc2, self.fc3):
                # Same law as nn.Linear.reset_parameters, drawn from the generator.
                bound = 1.0 / math.sqrt(layer.in_features)
                with torch.no_grad():
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)

    def features(self, x: Tensor) -> Tensor:
        """Hidden representation ``relu(fc1 x)``, shape (B, hidden)."""
        return torch.relu(self.fc1(x))

    def head(self, h: Tensor) -> Tensor:
        """Scores from hidden features, shape (B, 1)."""
        return torch.sigmoid(self.fc3(torch.relu(self.fc2(h))))

    def forward(self, x: Tensor) -> Tensor:
        """Probabilities of the positive class, shape (B, 1)."""
        return self.head(self.features(x))


def _as_tensor(x: Any, name: str, dtype: torch.dtype, device: torch.device | None) -> Tensor:
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, (np.ndarray, list, tuple)):
        t = torch.as_tensor(np.asarray(x))
    else:
        raise TypeError(f"{name} must be a numpy array or torch.Tensor, got {type(x).__name__}")
    return t.to(dtype=dtype, device=device if device is not None else t.device)


def _binary_vector(x: Any, name: str, n: int, device: torch.device) -> Tensor:
    t = _as_tensor(x, name, torch.long, device).reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"{name} must have one entry per row of X ({n}), got {t.shape[0]}")
    if not bool(torch.all((t == 0) | (t == 1))):
        raise ValueError(f"{name} must be binary (0/1)")
    return t


class GroupBatchSampler:
    """Balanced batches per sensitive group (DP) or per (group, label) cell (EO).

    The index tensor of every cell is built once; each :meth:`sample` draws ``batch_size``
    rows per cell without replacement, as the official ``np.random.choice(..., replace=False)``.

    Parameters
    ----------
    a : array-like or Tensor, shape (n,)
        Binary sensitive attribute.
    y : array-like or Tensor, shape (n,), optional
        Binary labels; when given, batches are balanced per (group, label) (EO protocol).
    batch_size : int
        Rows per group (DP) or per cell (EO).
    generator : torch.Generator, optional
        Source of the draws.

    Examples
    --------
    >>> s = GroupBatchSampler([0, 1, 0, 1, 1, 0], batch_size=2)
    >>> i0, i1 = s.sample()
    >>> i0.shape, i1.shape
    (torch.Size([2]), torch.Size([2]))
    """

    def __init__(
        self,
        a: Any,
        y: Any = None,
        *,
        batch_size: int = 500,
        generator: torch.Generator | None = None,
    ) -> None:
        batch_size = check_int("batch_size", batch_size, low=1)
        a_t = _as_tensor(a, "a", torch.long, None).reshape(-1)
        dev = a_t.device
        a_t = _binary_vector(a_t, "a", a_t.shape[0], dev)
        self.batch_size = batch_size
        self.generator = generator
        self.balanced_labels = y is not None
        labels: tuple[int | None, ...] = (0, 1) if y is not None else (None,)
        y_t = None if y is None else _binary_vector(y, "y", a_t.shape[0], dev)
        self.cells: dict[tuple[int, int | None], Tensor] = {}
        for g in (0, 1):
            for lab in labels:
                mask = a_t == g if y_t is None else (a_t == g) & (y_t == lab)
                idx = torch.nonzero(mask).reshape(-1)
                what = f"group a={g}" + ("" if lab is None else f", label y={lab}")
                if idx.numel() < batch_size:
                    raise ValueError(
                        f"{what} has {idx.numel()} rows, fewer than batch_size={batch_size}"
                    )
                self.cells[(g, lab)] = idx

    def _draw(self, idx: Tensor) -> Tensor:
        gen_dev = self.generator.device if self.generator is not None else torch.device("cpu")
        perm = torch.randperm(idx.numel(), generator=self.generator, device=gen_dev)
        return idx[perm[: self.batch_size].to(idx.device)]

    def sample(self) -> tuple[Tensor, Tensor]:
        """Row indices of the group-0 batch and the group-1 batch.

        Returns
        -------
        i0, i1 : Tensor of int64, shape (batch_size,) or (2 * batch_size,)
            With labels: the label-0 rows first, then the label-1 rows (as the official code).
        """
        out = []
        for g in (0, 1):
            parts = [self._draw(idx) for (gg, _), idx in self.cells.items() if gg == g]
            out.append(torch.cat(parts))
        return out[0], out[1]


def evaluate(
    model: nn.Module, X: Any, y: Any, a: Any, *, batch_size: int = 8192
) -> dict[str, float]:
    """Average precision and soft DP/EO gaps of ``model`` on a data set.

    Parameters
    ----------
    model : nn.Module
        ``f(x) -> (B,)`` or ``(B, 1)`` probabilities.
    X : array-like or Tensor, shape (n, *shape)
    y, a : array-like or Tensor, shape (n,)
        Binary labels and sensitive attribute.
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    metrics : dict
        ``{"ap", "dp_gap", "eo_gap"}`` as floats.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else None
    dtype = param.dtype if param is not None else torch.float32
    x_t = _as_tensor(X, "X", dtype, device)
    n = x_t.shape[0]
    y_t = _binary_vector(y, "y", n, x_t.device)
    a_t = _binary_vector(a, "a", n, x_t.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            s = torch.cat(
                [_scores(model, x_t[i : i + batch_size]) for i in range(0, n, batch_size)]
            )
    finally:
        model.train(was_training)
    s_np, y_np, a_np = s.cpu().numpy(), y_t.cpu().numpy(), a_t.cpu().numpy()
    return {
        "ap": average_precision(y_np, s_np),
        "dp_gap": demographic_parity_gap(s_np, a_np),
        "eo_gap": equalized_odds_gap(s_np, y_np, a_np),
    }


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x0: Tensor,
    y0: Tensor,
    x1: Tensor,
    y1: Tensor,
    *,
    method: TrainMethod = "mixup",
    mode: Literal["dp", "eo"] = "dp",
    lam: float = 0.5,
    t: float | Sequence[float] | None = None,
    n_t: int = 1,
    derivative: Literal["autograd", "jvp", "finite_difference"] = "autograd",
    generator: torch.Generator | None = None,
    adversary: AdversarialDebiasing | None = None,
    adversary_optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, float]:
    """One optimiser step on a group-0 batch and a group-1 batch: BCE + ``lam`` * regulariser.

    Parameters
    ----------
    model : nn.Module
        Probabilities ``(B,)`` or ``(B, 1)``; with ``method="manifold_mixup"`` it must have
        ``features`` and ``head`` methods (as :class:`AdultMLP`).
    optimizer : torch.optim.Optimizer
    x0, x1 : Tensor, shape (B, d)
        Group batches; for EO the label-0 rows come first, then label-1 rows, ``B/2`` each
        (what :class:`GroupBatchSampler` returns).
    y0, y1 : Tensor, shape (B,)
        Their labels.
    method : {"erm", "gapreg", "mixup", "manifold_mixup", "adversarial"}
    mode : {"dp", "eo"}
    lam : float
        Weight of the regulariser, >= 0.
    t : float, or a pair of floats for EO, optional
        Fixed mixup time(s) (replays an official draw in tests); drawn when omitted.
    n_t, derivative, generator
        Passed to the mixup penalties.
    adversary, adversary_optimizer
        Needed for ``method="adversarial"``: the adversary takes one step first.

    Returns
    -------
    losses : dict
        ``{"loss", "bce", "reg"}`` as floats (before the step).
    """
    lam = _check_method_mode(method, mode, lam)
    bce = nn.functional.binary_cross_entropy
    x = torch.cat([x0, x1])
    target = torch.cat([y0, y1]).to(x.dtype)
    if method == "adversarial":
        if adversary is None or adversary_optimizer is None:
            raise ValueError("method='adversarial' needs adversary and adversary_optimizer")
        a_cat = torch.cat([torch.zeros_like(target[: len(x0)]), torch.ones_like(target[len(x0) :])])
        scores = _probabilities(model, x)
        adversary_optimizer.zero_grad()
        y_adv = target if mode == "eo" else None
        adversary.adversary_loss(scores.detach(), a_cat, y_adv).backward()
        adversary_optimizer.step()
        reg = adversary.penalty(scores, a_cat, y_adv)
        sup = bce(scores, target)
    else:
        if method == "erm":
            reg = x.new_zeros(())
        elif method == "gapreg":
            if mode == "dp":
                reg = gap_reg_penalty(model, x0, x1)
            else:
                reg = gap_reg_penalty(model, x0, x1, y0=y0, y1=y1)
        else:
            f: Callable[[Tensor], Tensor] = model
            z0, z1 = x0, x1
            if method == "manifold_mixup":
                if not (hasattr(model, "features") and hasattr(model, "head")):
                    raise ValueError("manifold_mixup needs a model with features() and head()")
                split = cast(Any, model)  # has features() and head(), checked above
                f, z0, z1 = split.head, split.features(x0), split.features(x1)
            kw: dict[str, Any] = {"n_t": n_t, "method": derivative, "generator": generator}
            if mode == "dp":
                reg = dp_mixup_penalty(f, z0, z1, t=t, **kw)  # type: ignore[arg-type]
            else:
                reg = eo_mixup_penalty(f, z0, y0, z1, y1, t=t, **kw)  # type: ignore[arg-type]
        sup = bce(_probabilities(model, x), target)
    loss = sup + lam * reg
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "bce": float(sup.detach()), "reg": float(reg.detach())}


def _probabilities(model: Model, x: Tensor) -> Tensor:
    """The model's scores, checked to be probabilities (the BCE loss needs them)."""
    s = _scores(model, x)
    bad = ~((s >= 0) & (s <= 1))  # NaN is bad too
    if bool(bad.any()):
        raise ValueError(
            f"model must return probabilities in [0, 1] (sigmoid outputs) for the BCE loss, got "
            f"{int(bad.sum())} score(s) outside, e.g. {float(s[bad][0])}: end the model with a "
            f"sigmoid; NaN scores mean training diverged (lower lr or lam)"
        )
    return s


def _check_method_mode(method: str, mode: str, lam: Any) -> float:
    check_choice("method", method, METHODS)
    check_choice("mode", mode, ("dp", "eo"))
    return check_real("lam", lam, low=0.0)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    history : list of dict
        Per epoch: ``epoch`` (1-based) and, for each evaluated split ``s`` in
        train/val/test, ``s_ap``, ``s_dp_gap``, ``s_eo_gap``, ``s_gap`` (the mode's gap).
    selected_epoch : int
        The reported epoch (1-based).
    selected : dict
        ``history[selected_epoch - 1]``.
    state_dict : dict
        The model's weights at the selected epoch (the model itself ends at the last epoch).
    config : dict
        The arguments of the run.
    """

    history: list[dict[str, float]]
    selected_epoch: int
    selected: dict[str, float]
    state_dict: dict[str, Tensor]
    config: dict[str, Any] = field(default_factory=dict)


def train(
    model: nn.Module,
    X: Any,
    y: Any,
    a: Any,
    *,
    method: TrainMethod = "mixup",
    mode: Literal["dp", "eo"] = "dp",
    lam: float = 0.5,
    epochs: int = 10,
    iters_per_epoch: int = 100,
    batch_size: int = 500,
    lr: float = 1e-3,
    n_t: int = 1,
    derivative: Literal["autograd", "jvp", "finite_difference"] = "autograd",
    val: tuple[Any, Any, Any] | None = None,
    test: tuple[Any, Any, Any] | None = None,
    select: Literal["min_val_gap", "last"] = "min_val_gap",
    eval_train: bool = True,
    adversary_hidden: int = 0,
    generator: torch.Generator | None = None,
    show_progress: bool | None = None,
    desc: str | None = None,
) -> TrainResult:
    """Train ``model`` with ERM, GapReg, (manifold) fair mixup or adversarial debiasing.

    Parameters
    ----------
    model : nn.Module
        Probabilities ``(B,)`` or ``(B, 1)``; trained in place.
    X : array-like or Tensor, shape (n, d)
        Training inputs (moved to the model's device and dtype).
    y, a : array-like or Tensor, shape (n,)
        Binary labels and sensitive attribute.
    method : {"erm", "gapreg", "mixup", "manifold_mixup", "adversarial"}
    mode : {"dp", "eo"}
        Demographic parity (batches per group) or equalized odds (per group and label).
    lam : float
        Regulariser weight, >= 0 (official default 0.5).
    epochs, iters_per_epoch : int
        Official: 10 x 100.
    batch_size : int
        Rows per group (DP) or per (group, label) (EO); official 500.
    lr : float
        Adam learning rate (official 1e-3).
    n_t, derivative
        Mixup estimator options (see :func:`~papershelf.fair_mixup.mixup_path_penalty`).
    val, test : tuple (X, y, a), optional
        Evaluated after every epoch; ``val`` is required by ``select="min_val_gap"``.
    select : {"min_val_gap", "last"}
        Official rule: the epoch among 2..epochs with the smallest validation gap.
    eval_train : bool
        Also evaluate on the training set every epoch (train-vs-test gap).
    adversary_hidden : int
        Adversary width for ``method="adversarial"``.
    generator : torch.Generator, optional
        Seeds every draw (batches, mixup times).
    show_progress : bool, optional
        Progress bar over iterations (default: only on a terminal).
    desc : str, optional
        Label of the progress bar.

    Returns
    -------
    result : TrainResult

    References
    ----------
    Chuang & Mroueh, ICLR 2021, Sec. 5; official ``adult/main.py``.
    """
    lam = _check_method_mode(method, mode, lam)
    epochs = check_int("epochs", epochs, low=1)
    iters_per_epoch = check_int("iters_per_epoch", iters_per_epoch, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    lr = check_real("lr", lr, low=0.0, inclusive=(False, True))
    n_t = check_int("n_t", n_t, low=1)
    adversary_hidden = check_int("adversary_hidden", adversary_hidden, low=0)
    check_choice("select", select, ("min_val_gap", "last"))
    if select == "min_val_gap" and val is None:
        raise ValueError("select='min_val_gap' needs val=(X_val, y_val, a_val)")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("model has no parameters to train")
    x_t = _as_tensor(X, "X", param.dtype, param.device)
    if not bool(torch.isfinite(x_t).all()):
        raise ValueError("X contains NaN or inf")
    n = x_t.shape[0]
    y_t = _binary_vector(y, "y", n, param.device)
    a_t = _binary_vector(a, "a", n, param.device)
    sampler = GroupBatchSampler(
        a_t, y_t if mode == "eo" else None, batch_size=batch_size, generator=generator
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    adversary = adv_opt = None
    if method == "adversarial":
        adversary = AdversarialDebiasing(mode, hidden=adversary_hidden).to(param.device)
        adversary = adversary.to(param.dtype)
        adv_opt = torch.optim.Adam(adversary.parameters(), lr=lr)
    gap_key = f"{mode}_gap"
    splits = {"val": val, "test": test}
    if eval_train:
        splits["train"] = (x_t, y_t, a_t)
    history: list[dict[str, float]] = []
    best_gap, best_epoch, best_state = math.inf, epochs, None
    bar = progress(
        total=epochs * iters_per_epoch,
        desc=desc or f"{method} {mode} lam={lam}",
        disable=None if show_progress is None else not show_progress,
    )
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            for it in range(iters_per_epoch):
                i0, i1 = sampler.sample()
                losses = train_step(
                    model,
                    optimizer,
                    x_t[i0],
                    y_t[i0],
                    x_t[i1],
                    y_t[i1],
                    method=method,
                    mode=mode,
                    lam=lam,
                    n_t=n_t,
                    derivative=derivative,
                    generator=generator,
                    adversary=adversary,
                    adversary_optimizer=adv_opt,
                )
                if not math.isfinite(losses["loss"]):
                    raise ValueError(
                        f"training diverged at epoch {epoch}, iteration {it + 1}: the loss is "
                        f"{losses['loss']} (bce {losses['bce']}, reg {losses['reg']}); lower lr="
                        f"{lr:g} or lam={lam:g}"
                    )
                bar.update(1)
            row: dict[str, float] = {"epoch": epoch}
            for split, data in splits.items():
                if data is None:
                    continue
                m = evaluate(model, *data)
                row.update({f"{split}_{k}": v for k, v in m.items()})
                row[f"{split}_gap"] = m[gap_key]
            history.append(row)
            if select == "min_val_gap" and epoch >= min(2, epochs) and row["val_gap"] < best_gap:
                best_gap, best_epoch = row["val_gap"], epoch
                best_state = copy.deepcopy(model.state_dict())
    finally:
        bar.close()
    if select == "last" or best_state is None:
        best_epoch, best_state = epochs, copy.deepcopy(model.state_dict())
    config = {
        "method": method,
        "mode": mode,
        "lam": lam,
        "epochs": epochs,
        "iters_per_epoch": iters_per_epoch,
        "batch_size": batch_size,
        "lr": lr,
        "n_t": n_t,
        "derivative": derivative,
        "select": select,
    }
    logger.debug("trained %s: selected epoch %d", config, best_epoch)
    return TrainResult(history, best_epoch, history[best_epoch - 1], best_state, config)


@dataclass
class SweepRun:
    """One run of :func:`sweep`: the method, its lambda, the seed and its :class:`TrainResult`."""

    method: str
    lam: float
    seed: int
    result: TrainResult


def sweep(
    data: Callable[[int], Any],
    *,
    methods: Sequence[str] = ("erm", "gapreg", "mixup"),
    lams: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
    seeds: Sequence[int] = (0, 1, 2),
    mode: Literal["dp", "eo"] = "dp",
    model_fn: Callable[[int, torch.Generator], nn.Module] | None = None,
    show_progress: bool | None = None,
    **train_kwargs: Any,
) -> list[SweepRun]:
    """The official lambda sweep: every method x lambda x seed (ERM once per seed).

    Parameters
    ----------
    data : callable
        ``data(seed)`` returns an object with ``X_train, y_train, a_train, X_val, ...,
        a_test`` (e.g. ``lambda s: load_adult(seed=s)``); seeds share splits across methods.
    methods : sequence of str
        Among ``"erm", "gapreg", "mixup", "manifold_mixup", "adversarial"``.
    lams : sequence of float
        Lambda grid for the regularised methods.
    seeds : sequence of int
        One split, one initialisation and one batch stream per seed.
    mode : {"dp", "eo"}
    model_fn : callable, optional
        ``model_fn(in_features, generator) -> nn.Module``; :class:`AdultMLP` by default.
    show_progress : bool, optional
    **train_kwargs
        Passed to :func:`train` (``epochs``, ``batch_size``, ``select``, ...).

    Returns
    -------
    runs : list of SweepRun
    """
    for m in methods:
        check_choice("methods", m, METHODS)
    lams = [check_real("lams", lam, low=0.0) for lam in lams]
    make = model_fn or (lambda d, g: AdultMLP(d, generator=g))
    runs: list[SweepRun] = []
    for seed in seeds:
        d = data(seed)
        for m in methods:
            for lam in [0.0] if m == "erm" else list(lams):
                gen = torch.Generator().manual_seed(int(seed))
                model = make(int(d.X_train.shape[1]), gen)
                res = train(
                    model,
                    d.X_train,
                    d.y_train,
                    d.a_train,
                    method=m,  # type: ignore[arg-type]
                    mode=mode,
                    lam=float(lam),
                    val=(d.X_val, d.y_val, d.a_val),
                    test=(d.X_test, d.y_test, d.a_test),
                    generator=gen,
                    show_progress=show_progress,
                    desc=f"seed {seed} {m} {mode} lam={lam}",
                    **train_kwargs,
                )
                runs.append(SweepRun(m, float(lam), int(seed), res))
    return runs
