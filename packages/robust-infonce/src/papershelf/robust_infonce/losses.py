"""All of the package's losses (the top level keeps the first three a user needs).

* :func:`rince_loss`, :class:`RINCELoss`, :func:`info_nce_loss`: two views ``(z1, z2)``.
* :func:`rince_from_labels`: pytorch-metric-learning's ``(embeddings, labels)`` form.
* :func:`rince_from_logits`: any temperature-scaled ``(B, K)`` logits (MoCo queues, CLIP).
* :func:`moco_rince_loss`: the official MoCo v3 form.
* :func:`gather_with_grad`: all-gather across ranks, keeping gradients.
"""

from papershelf.robust_infonce._distributed import gather_with_grad
from papershelf.robust_infonce._loss import (
    RINCELoss,
    info_nce_loss,
    moco_rince_loss,
    rince_from_labels,
    rince_from_logits,
    rince_loss,
)

__all__ = [
    "RINCELoss",
    "gather_with_grad",
    "info_nce_loss",
    "moco_rince_loss",
    "rince_from_labels",
    "rince_from_logits",
    "rince_loss",
]
