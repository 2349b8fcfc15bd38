"""papershelf.robust_infonce: RINCE, robust contrastive learning against noisy views.

Chuang et al., "Robust Contrastive Learning against Noisy Views", CVPR 2022
(https://arxiv.org/abs/2201.04309). Drop-in contrastive losses in log space:
``rince_loss(z1, z2)``, ``RINCELoss``, ``info_nce_loss``, ``rince_from_logits`` and
``moco_rince_loss``.
"""

from papershelf.robust_infonce._distributed import gather_with_grad
from papershelf.robust_infonce._loss import (
    RINCELoss,
    info_nce_loss,
    moco_rince_loss,
    rince_from_logits,
    rince_loss,
)

__version__ = "0.1.0"

__all__ = [
    "RINCELoss",
    "__version__",
    "gather_with_grad",
    "info_nce_loss",
    "moco_rince_loss",
    "rince_from_logits",
    "rince_loss",
]
