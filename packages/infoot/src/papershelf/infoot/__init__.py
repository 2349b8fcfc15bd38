"""papershelf.infoot: InfoOT, information maximizing optimal transport.

Chuang, Jegelka, Alvarez-Melis, ICML 2023 (https://arxiv.org/abs/2210.03164). Estimators in
POT/scikit-learn style (:class:`InfoOT`, :class:`FusedInfoOT`), functional forms
(:func:`info_ot`, :func:`fused_info_ot`) and the kernel mutual information of a coupling.
numpy or torch inputs; torch is optional.
"""

from papershelf.infoot.estimators import FusedInfoOT, InfoOT
from papershelf.infoot.kernels import (
    bandwidth,
    gaussian_kernel,
    gaussian_kernels,
    label_block_distances,
    pairwise_euclidean,
)
from papershelf.infoot.mi import density_ratio, kde_mutual_information, mi_gradient
from papershelf.infoot.projection import barycentric_projection, conditional_projection
from papershelf.infoot.sinkhorn import round_to_polytope, sinkhorn_log, sinkhorn_scaling
from papershelf.infoot.solvers import fused_info_ot, fused_infoot_plan, info_ot, infoot_plan

__version__ = "0.1.0"

__all__ = [
    "FusedInfoOT",
    "InfoOT",
    "__version__",
    "bandwidth",
    "barycentric_projection",
    "conditional_projection",
    "density_ratio",
    "fused_info_ot",
    "fused_infoot_plan",
    "gaussian_kernel",
    "gaussian_kernels",
    "info_ot",
    "infoot_plan",
    "kde_mutual_information",
    "label_block_distances",
    "mi_gradient",
    "pairwise_euclidean",
    "round_to_polytope",
    "sinkhorn_log",
    "sinkhorn_scaling",
]
