"""HCL and DCL inside pytorch-metric-learning (``pip install "papershelf-hard-negatives[pml]"``).

:class:`~papershelf.hard_negatives.HardNegativeLoss` and
:class:`~papershelf.hard_negatives.DebiasedContrastiveLoss` already take pytorch-metric-learning's
``loss(embeddings, labels[, ref_emb=, ref_labels=])`` form (pairs from labels). Its
``SelfSupervisedLoss`` wrapper, however, accepts only the loss classes on a fixed list of names
(``SelfSupervisedLoss.supported_losses()``), so ``SelfSupervisedLoss(HardNegativeLoss())`` raises
there. :class:`SelfSupervisedLoss` here is that class, unchanged, with these two losses added to
the list::

    from papershelf.hard_negatives import HardNegativeLoss
    from papershelf.hard_negatives.metric_learning import SelfSupervisedLoss

    loss_fn = SelfSupervisedLoss(HardNegativeLoss(beta=1.0, tau_plus=0.1, temperature=0.5))
    loss = loss_fn(embeddings, ref_emb)  # == hcl_loss(embeddings, ref_emb) (symmetric=True)
"""

from __future__ import annotations

try:
    from pytorch_metric_learning.losses import SelfSupervisedLoss as _PMLSelfSupervisedLoss
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "papershelf.hard_negatives.metric_learning needs pytorch-metric-learning: "
        'pip install "papershelf-hard-negatives[pml]"'
    ) from exc

__all__ = ["SUPPORTED_LOSSES", "SelfSupervisedLoss"]

SUPPORTED_LOSSES = ("HardNegativeLoss", "DebiasedContrastiveLoss")


class SelfSupervisedLoss(_PMLSelfSupervisedLoss):
    """pytorch-metric-learning's ``SelfSupervisedLoss`` that also accepts this package's losses.

    ``symmetric=True`` (default) concatenates ``[embeddings; ref_emb]`` with labels
    ``[0..N-1, 0..N-1]``: every row is an anchor with its other view as the positive and the
    other ``2N - 2`` rows as negatives, exactly :func:`~papershelf.hard_negatives.hcl_loss`.
    ``symmetric=False`` uses the rows of ``embeddings`` as anchors and ``ref_emb`` as the pool
    of positives and negatives (``N - 1`` negatives per anchor).
    """

    @staticmethod
    def supported_losses() -> list[str]:
        return [*_PMLSelfSupervisedLoss.supported_losses(), *SUPPORTED_LOSSES]

    @classmethod
    def check_loss_support(cls, loss_name: str) -> None:
        if loss_name not in cls.supported_losses():
            raise ValueError(f"loss: SelfSupervisedLoss does not support {loss_name}")
