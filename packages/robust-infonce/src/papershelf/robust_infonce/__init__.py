"""papershelf.robust_infonce: RINCE, robust contrastive learning against noisy views.

Chuang et al., "Robust Contrastive Learning against Noisy Views", CVPR 2022
(https://arxiv.org/abs/2201.04309). Drop-in contrastive losses in log space: ``rince_loss(z1, z2)``
and ``RINCELoss`` (also ``(embeddings, labels)``), ``info_nce_loss``. More in the submodule
``papershelf.robust_infonce.losses`` (logits front end, MoCo v3 form, pairs from labels) and
``papershelf.robust_infonce.metric_learning`` (a pytorch-metric-learning loss).

The package's API is torch: importing it does not import torch, the first use of a loss does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from papershelf.core.lazy import lazy_exports

if TYPE_CHECKING:
    from papershelf.robust_infonce._distributed import gather_with_grad as gather_with_grad
    from papershelf.robust_infonce._loss import RINCELoss, info_nce_loss, rince_loss
    from papershelf.robust_infonce._loss import moco_rince_loss as moco_rince_loss
    from papershelf.robust_infonce._loss import rince_from_labels as rince_from_labels
    from papershelf.robust_infonce._loss import rince_from_logits as rince_from_logits

__version__ = "0.2.0"

__all__ = ["RINCELoss", "__version__", "info_nce_loss", "rince_loss"]

# Lazy re-exports (PEP 562): importing the package (and its light _registry, which the
# `papershelf` command loads) does not import torch. The names past the first three stay
# importable from here for code written against 0.1.
_EXPORTS = {
    "RINCELoss": "_loss",
    "info_nce_loss": "_loss",
    "rince_loss": "_loss",
    "moco_rince_loss": "_loss",
    "rince_from_labels": "_loss",
    "rince_from_logits": "_loss",
    "gather_with_grad": "_distributed",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
