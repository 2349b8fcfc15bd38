"""papershelf-contrastive-bench: the SimCLR harnesses shared by two packages' reproductions.

Unpublished workspace member. Submodules: :mod:`~papershelf.contrastive_bench.digits` (quick,
offline digits), :mod:`~papershelf.contrastive_bench.cifar` (paper-scale CIFAR-10 / STL10) and
:mod:`~papershelf.contrastive_bench.testing` (a gathered-loss check for tests). Nothing is
imported here, so importing the package does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
