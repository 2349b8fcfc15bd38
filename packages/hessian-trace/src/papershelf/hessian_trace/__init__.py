# ruff: noqa: F401  (names imported for type checkers only; runtime access is lazy)
"""papershelf.hessian_trace: the Hessian trace as a flatness regularizer, and its inductive bias.

Generic Hessian-trace estimators for any torch loss (exact, Gauss-Newton, Hutchinson, and
:class:`HessianTrace` over a model, a criterion and a data loader), a trace regularizer, and the
closed forms for deep linear networks from Gatmiry et al., "What is the Inductive Bias of
Flatness Regularization? A Study of Deep Matrix Factorization Models", NeurIPS 2023.

The package's API is torch: importing it is light (no torch import), and torch is imported
when the first name that needs it is used (PEP 562 lazy attributes). The rest of the API lives
in the submodules ``estimators``, ``dln``, ``data``, ``rip``, ``baselines`` and ``train``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

# name -> submodule; the first-use names are in __all__, the others stay reachable here
_LAZY: dict[str, str] = {
    "HessianTrace": "estimators",
    "TraceEstimate": "estimators",
    "TraceRegularizer": "estimators",
    "TraceConvergenceWarning": "estimators",
    "hessian_trace": "estimators",
    "hessian_trace_exact": "estimators",
    "hutchinson_trace": "estimators",
    "gauss_newton_trace": "estimators",
    "default_batch_size": "estimators",
    "DeepLinearNetwork": "dln",
    "balanced_min_trace_factorization": "dln",
    "deep_linear_trace": "dln",
    "end_to_end": "dln",
    "measurement_loss": "dln",
    "min_trace_bound": "dln",
    "population_trace": "dln",
    "precompute": "dln",
    "SensingProblem": "data",
    "gaussian_sensing": "data",
    "rip_constant": "rip",
    "min_frobenius_interpolant": "baselines",
    "nuclear_norm_min": "baselines",
    "History": "train",
    "fit": "train",
}
_SUBMODULES = ("baselines", "data", "dln", "estimators", "rip", "train")

__all__ = [
    "HessianTrace",
    "TraceRegularizer",
    "__version__",
    "deep_linear_trace",
    "fit",
    "gaussian_sensing",
    "hessian_trace",
    "hutchinson_trace",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from papershelf.hessian_trace.baselines import min_frobenius_interpolant, nuclear_norm_min
    from papershelf.hessian_trace.data import SensingProblem, gaussian_sensing
    from papershelf.hessian_trace.dln import (
        DeepLinearNetwork,
        balanced_min_trace_factorization,
        deep_linear_trace,
        end_to_end,
        measurement_loss,
        min_trace_bound,
        population_trace,
        precompute,
    )
    from papershelf.hessian_trace.estimators import (
        HessianTrace,
        TraceConvergenceWarning,
        TraceEstimate,
        TraceRegularizer,
        default_batch_size,
        gauss_newton_trace,
        hessian_trace,
        hessian_trace_exact,
        hutchinson_trace,
    )
    from papershelf.hessian_trace.rip import rip_constant
    from papershelf.hessian_trace.train import History, fit

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, _SUBMODULES)
