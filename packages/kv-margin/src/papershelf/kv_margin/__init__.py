# ruff: noqa: F401  (names imported for type checkers only; runtime access is lazy)
"""papershelf.kv_margin: k-variance normalized margins that predict generalization.

Chuang, Mroueh, Greenewald, Torralba, Jegelka, "Measuring Generalization with Optimal
Transport", NeurIPS 2021 (arXiv:2106.03314).

Importing the package is light: torch, POT and SciPy are imported when the first name that
needs them is used (PEP 562 lazy attributes). The measures take torch models; the k-variance,
the transport and the ranking metrics take numpy arrays too. Everything else lives in the
submodules ``kvariance``, ``margins``, ``measure``, ``metrics``, ``pgdl`` and ``tfrecord``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

# name -> submodule; the first-use names are in __all__, the others stay reachable here
_LAZY: dict[str, str] = {
    "OTConvergenceWarning": "kvariance",
    "class_k_variance": "kvariance",
    "k_variance": "kvariance",
    "wasserstein1": "kvariance",
    "MarginOutput": "margins",
    "lipschitz_estimate": "margins",
    "margins": "margins",
    "multiclass_margin": "margins",
    "KVMarginResult": "measure",
    "kv_gn_margin": "measure",
    "kv_margin": "measure",
    "kv_measure_from_arrays": "measure",
    "kv_measures": "measure",
    "granulated_kendall_tau": "metrics",
    "kendall_tau": "metrics",
    "pgdl_cmi": "metrics",
}
_SUBMODULES = ("kvariance", "measure", "metrics", "pgdl", "tfrecord")

__all__ = [
    "KVMarginResult",
    "__version__",
    "k_variance",
    "kendall_tau",
    "kv_gn_margin",
    "kv_margin",
    "kv_measures",
    "pgdl_cmi",
    "wasserstein1",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from papershelf.kv_margin.kvariance import (
        OTConvergenceWarning,
        class_k_variance,
        k_variance,
        wasserstein1,
    )
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

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, _SUBMODULES)
