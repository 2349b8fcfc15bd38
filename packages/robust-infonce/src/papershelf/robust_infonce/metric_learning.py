"""RINCE as a pytorch-metric-learning loss (needs the ``metric-learning`` extra).

:class:`NTXentLoss` is PML's ``NTXentLoss`` with RINCE's ``q`` and ``lam``: pairs from labels,
miners (``indices_tuple``), ``ref_emb``, distances and reducers all work as in PML, and it runs
inside PML's ``SelfSupervisedLoss``::

    from pytorch_metric_learning.losses import SelfSupervisedLoss
    from papershelf.robust_infonce.metric_learning import NTXentLoss

    loss_fn = SelfSupervisedLoss(NTXentLoss(q=0.5, lam=0.01, temperature=0.5))
    loss = loss_fn(z1, z2)  # == rince_loss(z1, z2, q=0.5, lam=0.01, temperature=0.5)

Why the class is called ``NTXentLoss``: PML's ``SelfSupervisedLoss`` admits a wrapped loss by its
class *name* (a fixed list, pytorch-metric-learning 2.9), so a class named ``RINCELoss`` is
refused there. RINCE is the NT-Xent family with an exponent: ``q = 0, lam = 1`` is PML's
``NTXentLoss`` exactly, so the name is accurate. Outside PML, :class:`~papershelf.robust_infonce.
RINCELoss` also takes ``(embeddings, labels)`` and needs no PML.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from papershelf.robust_infonce._loss import _check_q_lam, _check_temperature, _rince_from_lse

try:
    from pytorch_metric_learning import losses as _pml_losses
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "papershelf.robust_infonce.metric_learning needs pytorch-metric-learning: "
        'pip install "papershelf-robust-infonce[metric-learning]"'
    ) from exc

__all__ = ["NTXentLoss"]


class NTXentLoss(_pml_losses.NTXentLoss):
    r"""PML's ``NTXentLoss`` generalised to RINCE (Chuang et al., CVPR 2022).

    For each positive pair ``(a, p)`` with negatives ``n`` of the anchor (PML's pair
    convention), :math:`\ell = -e^{q s^+}/q + (\lambda S)^q/q` with
    :math:`S = e^{s^+} + \sum_n e^{s_n}` and ``s = similarity / temperature``, computed in log
    space (finite wherever the true value is representable, ``±inf`` beyond).

    Parameters
    ----------
    q : float, default 0.5
        Exponent in ``[0, 1]``; ``q = 0`` with ``lam = 1`` is PML's ``NTXentLoss``.
    lam : float, default 0.01
        Density weight ``> 0``.
    temperature : float or 0-d Tensor, default 0.5
        Note PML's own default is 0.07; RINCE's official CIFAR setting is 0.5.
    **kwargs
        PML options (``distance``, ``reducer``, ``embedding_regularizer``, ...).
    """

    def __init__(
        self, q: float = 0.5, lam: float = 0.01, temperature: float | Tensor = 0.5, **kwargs: Any
    ) -> None:
        qv, lamv = _check_q_lam(q, lam)
        _check_temperature(temperature)
        super().__init__(temperature=temperature, **kwargs)
        self.q, self.lam = qv, lamv
        self.add_to_recordable_attributes(list_of_names=["q", "lam"], is_stat=False)

    def _compute_loss(
        self, pos_pairs: Tensor, neg_pairs: Tensor, indices_tuple: tuple[Tensor, ...]
    ) -> dict[str, Any]:
        a1, _p, a2, _n = indices_tuple
        if len(a1) == 0:
            return self.zero_losses()
        dtype = torch.promote_types(pos_pairs.dtype, torch.float32)
        pos, neg = pos_pairs.to(dtype), (neg_pairs.to(dtype) if len(a2) else None)
        if not self.distance.is_inverted:  # distances: larger is less similar
            pos = -pos
            neg = -neg if neg is not None else None
        pos = pos / self.temperature
        if neg is not None:
            neg = neg / self.temperature
            same_anchor = a2.unsqueeze(0) == a1.unsqueeze(1)  # (P, M): negatives of each pair
            lse_neg = torch.logsumexp(neg.unsqueeze(0).masked_fill(~same_anchor, -torch.inf), 1)
            lse = torch.logaddexp(pos, lse_neg)
        else:
            lse = pos
        losses = _rince_from_lse(lse, pos, self.q, self.lam).to(pos_pairs.dtype)
        return {
            "loss": {
                "losses": losses,
                "indices": (a1, _p),
                "reduction_type": "pos_pair",
            }
        }
