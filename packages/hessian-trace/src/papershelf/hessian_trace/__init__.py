"""papershelf.hessian_trace: the Hessian trace as a flatness regularizer, and its inductive bias.

Generic Hessian-trace estimators for any torch loss (exact, Gauss-Newton, Hutchinson), a
trace regularizer, and the closed forms for deep linear networks from Gatmiry et al.,
"What is the Inductive Bias of Flatness Regularization? A Study of Deep Matrix
Factorization Models", NeurIPS 2023.
"""

from papershelf.hessian_trace import baselines, data, dln, train
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
    TraceRegularizer,
    gauss_newton_trace,
    hessian_trace,
    hessian_trace_exact,
    hutchinson_trace,
)
from papershelf.hessian_trace.train import History, fit

__version__ = "0.1.0"

__all__ = [
    "DeepLinearNetwork",
    "History",
    "SensingProblem",
    "TraceRegularizer",
    "__version__",
    "balanced_min_trace_factorization",
    "baselines",
    "data",
    "deep_linear_trace",
    "dln",
    "end_to_end",
    "fit",
    "gauss_newton_trace",
    "gaussian_sensing",
    "hessian_trace",
    "hessian_trace_exact",
    "hutchinson_trace",
    "measurement_loss",
    "min_frobenius_interpolant",
    "min_trace_bound",
    "nuclear_norm_min",
    "population_trace",
    "precompute",
    "train",
]
