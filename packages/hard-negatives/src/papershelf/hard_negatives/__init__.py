"""papershelf.hard_negatives: hard negative sampling for contrastive learning (HCL) and DCL.

Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021
(https://arxiv.org/abs/2010.04592), with the debiased contrastive loss of Chuang et al.,
NeurIPS 2020, as its ``beta = 0`` member. Drop-in losses in log space: ``hcl_loss(z1, z2)``,
``HardNegativeLoss``, ``debiased_loss``, ``nt_xent_loss``, ``hcl_from_logits``. The graph
variant (InfoGraph with hard negatives) is :mod:`papershelf.hard_negatives.graph`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from papershelf.hard_negatives._distributed import gather_with_grad
    from papershelf.hard_negatives._loss import (
        ClampCollapseWarning,
        DebiasedContrastiveLoss,
        HardNegativeLoss,
        beta_schedule,
        debiased_loss,
        hcl_from_logits,
        hcl_loss,
        nt_xent_loss,
    )

__version__ = "0.1.0"

__all__ = [
    "ClampCollapseWarning",
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "__version__",
    "beta_schedule",
    "debiased_loss",
    "gather_with_grad",
    "hcl_from_logits",
    "hcl_loss",
    "nt_xent_loss",
]

# Lazy re-exports: importing the package (and its light _registry, which the
# `papershelf` command loads) does not import torch.
_EXPORTS = {
    "ClampCollapseWarning": "_loss",
    "DebiasedContrastiveLoss": "_loss",
    "HardNegativeLoss": "_loss",
    "beta_schedule": "_loss",
    "debiased_loss": "_loss",
    "gather_with_grad": "_loss",  # re-exported from papershelf.hard_negatives._distributed
    "hcl_from_logits": "_loss",
    "hcl_loss": "_loss",
    "nt_xent_loss": "_loss",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
