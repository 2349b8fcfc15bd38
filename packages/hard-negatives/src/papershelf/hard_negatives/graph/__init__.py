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
    from papershelf.hard_negatives.graph._loss import infograph_jsd, infograph_jsd_hard

__all__ = [
    "infograph_jsd",
    "infograph_jsd_hard",
]

_EXPORTS = {
    "infograph_jsd": "_loss",
    "infograph_jsd_hard": "_loss",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
