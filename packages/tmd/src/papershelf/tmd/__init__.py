"""papershelf.tmd: Tree Mover's Distance for graphs (Chuang & Jegelka, NeurIPS 2022).

Exact TMD between attributed graphs (:func:`tmd`), memoized distance matrices
(:func:`pairwise_tmd`), the TMD kernel and TMD-SVM (:class:`TreeMoversKernel`,
:class:`TMDSVC`), input helpers and the GIN stability weights (:func:`pascal_weights`).
"""

from papershelf.tmd.datasets import load_tu_dataset, molecule_like_graphs, tu_data_root
from papershelf.tmd.distance import pairwise_tmd, pascal_weights, tmd
from papershelf.tmd.graphs import from_networkx, one_hot
from papershelf.tmd.kernel import TMDSVC, SplitResult, TreeMoversKernel, svm_split_accuracy

__version__ = "0.1.0"

__all__ = [
    "TMDSVC",
    "SplitResult",
    "TreeMoversKernel",
    "__version__",
    "from_networkx",
    "load_tu_dataset",
    "molecule_like_graphs",
    "one_hot",
    "pairwise_tmd",
    "pascal_weights",
    "svm_split_accuracy",
    "tmd",
    "tu_data_root",
]
