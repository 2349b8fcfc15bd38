"""papershelf-core: the thin, paper-agnostic core of papershelf.

Result records and the shelf's verdict rule, the reproduce registry and the ``papershelf``
command, seeding, devices, progress bars, argument validation. NumPy and tqdm are the only hard
dependencies; this module imports nothing until one of its names is used (PEP 562).
"""

from __future__ import annotations

# ``progress`` is both a submodule and its function: bind the function now (stdlib only), so
# that importing the submodule elsewhere cannot shadow it.
from papershelf.core.lazy import lazy_exports
from papershelf.core.progress import progress

__version__ = "0.2.0"

_SUBMODULES = {
    "io": "atomic_write_json atomic_write_text save_figure",
    "records": "ClaimTest ResultRecord STATUSES VERDICTS claim_test read_results "
    "records_from_json records_to_json results_table",
    "registry": "ReproduceContext ReproduceError Reproduction discover get_reproduction",
    "runtime": "cpu_threads cuda_available describe_hardware make_generator make_rng "
    "package_versions resolve_device",
    "validation": "check_array check_int check_real",
}
_LAZY = {name: module for module, names in _SUBMODULES.items() for name in names.split()}

__all__ = ["__version__", "progress", *sorted(_LAZY)]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
