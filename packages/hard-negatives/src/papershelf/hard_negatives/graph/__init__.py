"""papershelf.hard_negatives.graph: HCL's graph variant (InfoGraph with hard negatives).

The loss (:func:`infograph_jsd_hard`, :func:`infograph_jsd`) needs torch only; the GIN encoder,
the synthetic graph classes and the small experiment need the ``graph`` extra
(``pip install "papershelf-hard-negatives[graph]"``, torch-geometric), the SVM evaluation also
scikit-learn (``reproduce`` extra).

References
----------
Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021 (graph experiments,
official code ``graph/`` of github.com/joshr17/HCL). Sun et al., "InfoGraph", ICLR 2020.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from papershelf.hard_negatives.graph._data import GRAPH_FAMILIES, synthetic_graph_classes
    from papershelf.hard_negatives.graph._experiment import (
        GraphExperimentConfig,
        GraphExperimentResult,
        graph_figure,
        graph_records,
        run_graph,
        run_graph_experiment,
        svm_accuracy,
        train_infograph,
    )
    from papershelf.hard_negatives.graph._loss import infograph_jsd, infograph_jsd_hard
    from papershelf.hard_negatives.graph._model import GINEncoder, InfoGraph, InfoGraphConfig

__all__ = [
    "GRAPH_FAMILIES",
    "GINEncoder",
    "GraphExperimentConfig",
    "GraphExperimentResult",
    "InfoGraph",
    "InfoGraphConfig",
    "graph_figure",
    "graph_records",
    "infograph_jsd",
    "infograph_jsd_hard",
    "run_graph",
    "run_graph_experiment",
    "svm_accuracy",
    "synthetic_graph_classes",
    "train_infograph",
]

# Lazy: the loss needs torch only; the rest imports torch-geometric (and scikit-learn to score).
_EXPORTS = {
    "GRAPH_FAMILIES": "_data",
    "synthetic_graph_classes": "_data",
    "GraphExperimentConfig": "_experiment",
    "GraphExperimentResult": "_experiment",
    "graph_figure": "_experiment",
    "graph_records": "_experiment",
    "run_graph": "_experiment",
    "run_graph_experiment": "_experiment",
    "svm_accuracy": "_experiment",
    "train_infograph": "_experiment",
    "infograph_jsd": "_loss",
    "infograph_jsd_hard": "_loss",
    "GINEncoder": "_model",
    "InfoGraph": "_model",
    "InfoGraphConfig": "_model",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
