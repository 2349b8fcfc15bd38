"""papershelf.tmd: Tree Mover's Distance for graphs (Chuang & Jegelka, NeurIPS 2022).

Exact TMD between attributed graphs (:func:`tmd`), memoized distance matrices
(:func:`pairwise_tmd`, :class:`TreeDistanceTable` for block-wise and distributed work) and the
paper's TMD-SVM as a scikit-learn classifier (:class:`TMDSVC`). More in the submodules:
:mod:`papershelf.tmd.kernel` (``TreeMoversKernel``, ``svm_split_accuracy``),
:mod:`papershelf.tmd.graphs` (``from_networkx``, ``one_hot``), :mod:`papershelf.tmd.datasets`
(``molecule_like_graphs``, ``load_tu_dataset``) and :mod:`papershelf.tmd.stability` (GIN).

Imports are lazy: ``import papershelf.tmd`` loads neither torch nor scikit-learn; a name loads
its module when first used (``TMDSVC`` needs the ``sklearn`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

__version__ = "0.2.0"

__all__ = [
    "TMDSVC",
    "TreeDistanceTable",
    "__version__",
    "molecule_like_graphs",
    "pairwise_tmd",
    "pascal_weights",
    "tmd",
]

# every public name and the submodule that defines it (the first group is __all__; the rest
# stay importable from the top level for code written against 0.1)
_LAZY = {
    "TMDSVC": "kernel",
    "TreeDistanceTable": "distance",
    "molecule_like_graphs": "datasets",
    "pairwise_tmd": "distance",
    "pascal_weights": "distance",
    "tmd": "distance",
    "SplitResult": "kernel",
    "TreeMoversKernel": "kernel",
    "svm_split_accuracy": "kernel",
    "from_networkx": "graphs",
    "one_hot": "graphs",
    "load_tu_dataset": "datasets",
    "tu_data_root": "datasets",
}

if TYPE_CHECKING:
    from papershelf.tmd.datasets import load_tu_dataset as load_tu_dataset
    from papershelf.tmd.datasets import molecule_like_graphs as molecule_like_graphs
    from papershelf.tmd.datasets import tu_data_root as tu_data_root
    from papershelf.tmd.distance import TreeDistanceTable as TreeDistanceTable
    from papershelf.tmd.distance import pairwise_tmd as pairwise_tmd
    from papershelf.tmd.distance import pascal_weights as pascal_weights
    from papershelf.tmd.distance import tmd as tmd
    from papershelf.tmd.graphs import from_networkx as from_networkx
    from papershelf.tmd.graphs import one_hot as one_hot
    from papershelf.tmd.kernel import TMDSVC as TMDSVC
    from papershelf.tmd.kernel import SplitResult as SplitResult
    from papershelf.tmd.kernel import TreeMoversKernel as TreeMoversKernel
    from papershelf.tmd.kernel import svm_split_accuracy as svm_split_accuracy

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
