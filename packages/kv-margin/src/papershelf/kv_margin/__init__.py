"""papershelf.kv_margin: k-variance normalized margins that predict generalization.

Chuang, Mroueh, Greenewald, Torralba, Jegelka, "Measuring Generalization with Optimal
Transport", NeurIPS 2021 (arXiv:2106.03314).
"""

from papershelf.kv_margin.kvariance import class_k_variance, k_variance, wasserstein1
from papershelf.kv_margin.margins import (
    MarginOutput,
    lipschitz_estimate,
    margins,
    multiclass_margin,
)
from papershelf.kv_margin.measure import (
    KVMarginResult,
    kv_gn_margin,
    kv_margin,
    kv_measure_from_arrays,
    kv_measures,
)
from papershelf.kv_margin.metrics import granulated_kendall_tau, kendall_tau, pgdl_cmi

__version__ = "0.1.0"

__all__ = [
    "KVMarginResult",
    "MarginOutput",
    "__version__",
    "class_k_variance",
    "granulated_kendall_tau",
    "k_variance",
    "kendall_tau",
    "kv_gn_margin",
    "kv_margin",
    "kv_measure_from_arrays",
    "kv_measures",
    "lipschitz_estimate",
    "margins",
    "multiclass_margin",
    "pgdl_cmi",
    "wasserstein1",
]
