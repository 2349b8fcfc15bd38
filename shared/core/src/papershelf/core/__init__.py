"""papershelf-core: the thin, paper-agnostic core of papershelf.

Seeding, devices, result records, progress bars, figure saving, the reproduce
registry and the ``papershelf`` command. NumPy is the only hard dependency;
torch, matplotlib and tqdm are imported when first used.
"""

from papershelf.core.devices import cpu_threads, cuda_available, resolve_device, resolve_dtype
from papershelf.core.environment import describe_hardware, package_versions
from papershelf.core.io import atomic_write_json, atomic_write_text, save_figure
from papershelf.core.progress import progress
from papershelf.core.records import (
    STATUSES,
    ResultRecord,
    paired_difference,
    read_results,
    records_from_json,
    records_to_json,
    results_table,
)
from papershelf.core.registry import ReproduceContext, Reproduction, discover, get_reproduction
from papershelf.core.seeding import make_generator, make_rng, seed_everything

__version__ = "0.2.0"

__all__ = [
    "STATUSES",
    "ReproduceContext",
    "Reproduction",
    "ResultRecord",
    "__version__",
    "atomic_write_json",
    "atomic_write_text",
    "cpu_threads",
    "cuda_available",
    "describe_hardware",
    "discover",
    "get_reproduction",
    "make_generator",
    "make_rng",
    "paired_difference",
    "package_versions",
    "progress",
    "read_results",
    "records_from_json",
    "records_to_json",
    "resolve_device",
    "resolve_dtype",
    "results_table",
    "save_figure",
    "seed_everything",
]
