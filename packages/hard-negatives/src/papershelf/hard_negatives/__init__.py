"""papershelf.hard_negatives: hard negative sampling for contrastive learning (HCL) and DCL.

Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021
(https://arxiv.org/abs/2010.04592), with the debiased contrastive loss of Chuang et al.,
NeurIPS 2020, as its ``beta = 0`` member. The main API is torch: ``hcl_loss(z1, z2)``,
``HardNegativeLoss`` (also ``loss(embeddings, labels)`` as in pytorch-metric-learning),
``debiased_loss``, ``nt_xent_loss``. Importing the package does not import torch; the first use
of one of these names does.

More in the submodules: ``hcl_from_logits``, ``hcl_from_labels``, ``beta_schedule``,
``ClampCollapseWarning`` (also reachable here), :mod:`papershelf.hard_negatives.metric_learning`
(``SelfSupervisedLoss``, ``[pml]`` extra), :mod:`papershelf.hard_negatives.graph` (InfoGraph
with hard negatives, ``[graph]`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

if TYPE_CHECKING:  # names beyond __all__ are reachable too (lazy, below)
    from papershelf.hard_negatives._distributed import gather_with_grad as gather_with_grad
    from papershelf.hard_negatives._loss import (
        ClampCollapseError as ClampCollapseError,
    )
    from papershelf.hard_negatives._loss import (
        ClampCollapseWarning as ClampCollapseWarning,
    )
    from papershelf.hard_negatives._loss import (
        DebiasedContrastiveLoss,
        HardNegativeLoss,
        debiased_loss,
        hcl_loss,
        nt_xent_loss,
    )
    from papershelf.hard_negatives._loss import (
        beta_schedule as beta_schedule,
    )
    from papershelf.hard_negatives._loss import (
        hcl_from_labels as hcl_from_labels,
    )
    from papershelf.hard_negatives._loss import (
        hcl_from_logits as hcl_from_logits,
    )

__version__ = "0.2.0"

__all__ = [
    "DebiasedContrastiveLoss",
    "HardNegativeLoss",
    "__version__",
    "debiased_loss",
    "hcl_loss",
    "nt_xent_loss",
]

# Lazy re-exports (PEP 562): importing the package (and its light _registry, which the
# `papershelf` command loads) does not import torch. Names beyond __all__ stay reachable.
_EXPORTS = {
    "ClampCollapseError": "_loss",
    "ClampCollapseWarning": "_loss",
    "DebiasedContrastiveLoss": "_loss",
    "HardNegativeLoss": "_loss",
    "beta_schedule": "_loss",
    "debiased_loss": "_loss",
    "gather_with_grad": "_distributed",
    "hcl_from_labels": "_loss",
    "hcl_from_logits": "_loss",
    "hcl_loss": "_loss",
    "nt_xent_loss": "_loss",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
