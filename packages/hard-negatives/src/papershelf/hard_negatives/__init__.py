"""papershelf.hard_negatives: hard negative sampling for contrastive learning (HCL) and DCL.

Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021
(https://arxiv.org/abs/2010.04592), with the debiased contrastive loss of Chuang et al.,
NeurIPS 2020, as its ``beta = 0`` member. Drop-in losses in log space: ``hcl_loss(z1, z2)``,
``HardNegativeLoss``, ``debiased_loss``, ``nt_xent_loss``, ``hcl_from_logits``.
"""

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
