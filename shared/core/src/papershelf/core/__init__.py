"""papershelf-core: the thin, paper-agnostic core of papershelf.

Result records and the shelf's verdict rule, the reproduce registry and the ``papershelf``
command, seeding, devices, progress bars, argument validation. NumPy is the only hard
dependency; torch, matplotlib and tqdm are imported when first used, and this module imports
nothing until one of its names is used (so ``papershelf --help`` stays fast).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# ``progress`` is both a submodule and its function: bind the function now (stdlib only), so
# that importing the submodule elsewhere cannot shadow it.
from papershelf.core.progress import progress

__version__ = "0.2.0"

_LAZY = {
    "ClaimTest": "records",
    "ReproduceContext": "registry",
    "ReproduceError": "registry",
    "Reproduction": "registry",
    "ResultRecord": "records",
    "STATUSES": "records",
    "VERDICTS": "records",
    "atomic_write_json": "io",
    "atomic_write_text": "io",
    "check_array": "validation",
    "check_int": "validation",
    "check_real": "validation",
    "claim_test": "records",
    "cpu_threads": "devices",
    "cuda_available": "devices",
    "describe_hardware": "environment",
    "discover": "registry",
    "get_reproduction": "registry",
    "make_generator": "seeding",
    "make_rng": "seeding",
    "package_versions": "environment",
    "paired_difference": "records",
    "read_results": "records",
    "records_from_json": "records",
    "records_to_json": "records",
    "resolve_device": "devices",
    "results_table": "records",
    "save_figure": "io",
}

__all__ = [
    "__version__",
    "ClaimTest",
    "ReproduceContext",
    "ReproduceError",
    "Reproduction",
    "ResultRecord",
    "STATUSES",
    "VERDICTS",
    "atomic_write_json",
    "atomic_write_text",
    "check_array",
    "check_int",
    "check_real",
    "claim_test",
    "cpu_threads",
    "cuda_available",
    "describe_hardware",
    "discover",
    "get_reproduction",
    "make_generator",
    "make_rng",
    "package_versions",
    "paired_difference",
    "progress",
    "read_results",
    "records_from_json",
    "records_to_json",
    "resolve_device",
    "results_table",
    "save_figure",
]

if TYPE_CHECKING:
    from papershelf.core.devices import cpu_threads, cuda_available, resolve_device
    from papershelf.core.environment import describe_hardware, package_versions
    from papershelf.core.io import atomic_write_json, atomic_write_text, save_figure
    from papershelf.core.records import (
        STATUSES,
        VERDICTS,
        ClaimTest,
        ResultRecord,
        claim_test,
        paired_difference,
        read_results,
        records_from_json,
        records_to_json,
        results_table,
    )
    from papershelf.core.registry import (
        ReproduceContext,
        ReproduceError,
        Reproduction,
        discover,
        get_reproduction,
    )
    from papershelf.core.seeding import make_generator, make_rng
    from papershelf.core.validation import check_array, check_int, check_real


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'papershelf.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"papershelf.core.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
