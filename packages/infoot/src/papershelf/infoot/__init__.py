"""papershelf.infoot: InfoOT, information maximizing optimal transport.

Chuang, Jegelka, Alvarez-Melis, ICML 2023 (https://arxiv.org/abs/2210.03164). The estimators
:class:`InfoOT` and :class:`FusedInfoOT` follow POT's ``ot.da`` calling convention and the
scikit-learn estimator protocol; :func:`info_ot` / :func:`fused_info_ot` return the coupling.
Kernels, the mutual information, projections and the Sinkhorn solvers live in the submodules
(``kernels``, ``mi``, ``projection``, ``sinkhorn``, ``solvers``). numpy or torch inputs.

Importing this package loads nothing heavy: numpy, POT and scikit-learn are imported when a
name that needs them is first used (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

__all__ = ["FusedInfoOT", "InfoOT", "__version__", "fused_info_ot", "info_ot"]

# every public name, by submodule (the pre-0.2 top-level names stay importable from here)
_LAZY = {
    "FusedInfoOT": "estimators",
    "InfoOT": "estimators",
    "fused_info_ot": "solvers",
    "info_ot": "solvers",
    "fused_infoot_plan": "solvers",
    "infoot_plan": "solvers",
    "InfoOTConvergenceWarning": "solvers",
    "bandwidth": "kernels",
    "gaussian_kernel": "kernels",
    "gaussian_kernels": "kernels",
    "label_block_distances": "kernels",
    "pairwise_euclidean": "kernels",
    "density_ratio": "mi",
    "kde_mutual_information": "mi",
    "mi_gradient": "mi",
    "barycentric_projection": "projection",
    "conditional_projection": "projection",
    "round_to_polytope": "sinkhorn",
    "sinkhorn_log": "sinkhorn",
    "sinkhorn_scaling": "sinkhorn",
    "sinkhorn_warm": "sinkhorn",
    "SinkhornConvergenceWarning": "sinkhorn",
}

if TYPE_CHECKING:
    from papershelf.infoot.estimators import FusedInfoOT, InfoOT
    from papershelf.infoot.solvers import fused_info_ot, info_ot

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
