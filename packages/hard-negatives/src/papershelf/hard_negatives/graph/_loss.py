r"""InfoGraph's local-global JSD loss and its hard-negative variant ("JSD_hard") of HCL.

Robinson et al., "Contrastive Learning with Hard Negative Samples" (ICLR 2021), graph experiments:
InfoGraph (Sun et al., ICLR 2020) with the Jensen-Shannon estimator between node embeddings and
graph embeddings, negatives reweighted by hardness and debiased by the class prior
:math:`\tau^+`. Everything follows ``local_global_loss_`` and ``gan_losses.py`` of the official
``graph/`` code (joshr17/HCL@7b4647f), including its multiplicative masks, in closed form.

Scores :math:`s_{ij} = l_i^\top g_j` for node :math:`i` (in graph :math:`b_i`) and graph :math:`j`;
:math:`p_i = s_{i b_i}`; :math:`q_{ij} = s_{ij}` for :math:`j \ne b_i` and :math:`0` at
:math:`j = b_i` (the official code multiplies by a 0/1 mask); :math:`c = \tau^+ / (1 - \tau^+)`;
:math:`\operatorname{sp}` is softplus; :math:`G` graphs, :math:`n` nodes.

.. math::

    E^+_i &= \log 2 - \operatorname{sp}(-p_i) - c\,\operatorname{sp}(p_i)
             - (G - 1)\, c \log 2 \\
    E^-_i &= \frac{1}{1-\tau^+} \sum_{j \ne b_i} \big(\operatorname{sp}(q_{ij}) - \log 2\big)
             \quad (\beta = 0) \\
    E^-_i &= \frac{G}{1-\tau^+} \sum_{j} \pi_{ij}\, \operatorname{sp}(q_{ij}) - G \log 2,
    \quad \pi_{ij} = \operatorname{softmax}_j\Big(\frac{2 \sigma \beta\, q_{ij}}{a}\Big),
    \quad a = \max_{i, j} |q_{ij}| \quad (\beta > 0) \\
    \ell_i &= \frac{E^-_i}{G - 1} - E^+_i, \qquad L = \frac{1}{n} \sum_i \ell_i .

The term :math:`-(G-1) c \log 2` and the :math:`j = b_i` entries of the :math:`\beta > 0` sum are
what the zeroed (masked) entries contribute in the official code. :math:`\sigma = -1` (the code)
up-weights negatives with *low* scores; :math:`\sigma = +1` follows the paper's pseudo-code
(Fig. 14, ``+2 * neg``; HCL issue #11).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from papershelf.core.validation import check_choice, check_real
from papershelf.hard_negatives._checks import check_tensor, reduce_loss

__all__ = ["infograph_jsd", "infograph_jsd_hard"]

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")
_LOG2 = math.log(2.0)


def _check_inputs(l_enc: object, g_enc: object, batch: object) -> tuple[Tensor, Tensor, Tensor]:
    lt = check_tensor(l_enc, "l_enc", 2)
    gt = check_tensor(g_enc, "g_enc", 2)
    if lt.shape[1] != gt.shape[1]:
        raise ValueError(
            f"l_enc (n_nodes, d) and g_enc (n_graphs, d) need the same d, got "
            f"{tuple(lt.shape)} and {tuple(gt.shape)}"
        )
    if lt.shape[0] < 1:
        raise ValueError("l_enc needs at least one node, got shape (0, d)")
    if gt.shape[0] < 2:
        raise ValueError(
            f"g_enc needs n_graphs >= 2 (one graph has no negatives), got n_graphs={gt.shape[0]}"
        )
    if lt.device != gt.device:
        raise ValueError(f"l_enc is on {lt.device} and g_enc on {gt.device}")
    if not isinstance(batch, Tensor):
        raise TypeError(
            f"batch must be a torch.Tensor of graph indices, got {type(batch).__name__}"
        )
    if batch.ndim != 1 or batch.shape[0] != lt.shape[0]:
        raise ValueError(
            f"batch must have shape (n_nodes,) = ({lt.shape[0]},), got {tuple(batch.shape)}"
        )
    if batch.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"batch must be an integer tensor of graph indices, got {batch.dtype}")
    if batch.device != lt.device:
        raise ValueError(f"batch is on {batch.device} and l_enc on {lt.device}")
    if bool((batch < 0).any()) or bool((batch >= gt.shape[0]).any()):
        raise ValueError(
            f"batch holds graph indices outside [0, n_graphs) = [0, {gt.shape[0]}): "
            f"min {int(batch.min())}, max {int(batch.max())}"
        )
    return lt, gt, batch.long()


def infograph_jsd_hard(
    l_enc: Tensor,
    g_enc: Tensor,
    batch: Tensor,
    *,
    beta: float,
    tau_plus: float = 0.5,
    weight_sign: int = 1,
    reduction: Reduction = "mean",
) -> Tensor:
    r"""HCL's hard-negative InfoGraph loss ("JSD_hard") between node and graph embeddings.

    Each node's positive is its own graph; every other graph in the batch is a negative.
    Negatives are reweighted by :math:`\exp(2\sigma\beta q / a)` normalised per node, where
    :math:`a` is the largest absolute negative score in the batch, and the estimate is debiased
    with the class prior :math:`\tau^+` (module docstring for the closed form).

    Parameters
    ----------
    l_enc : Tensor, shape (n_nodes, d)
        Node (local) embeddings.
    g_enc : Tensor, shape (n_graphs, d)
        Graph (global) embeddings, ``n_graphs >= 2``.
    batch : Tensor of int, shape (n_nodes,)
        Graph index of each node in ``[0, n_graphs)`` (torch-geometric's ``data.batch``).
    beta : float
        Hardness :math:`\beta \ge 0`; the paper sweeps {0, 1, 2, 10}. ``beta = 0`` is the
        debiased JSD (the official code's separate branch).
    tau_plus : float, default 0.5
        Class prior :math:`\tau^+ \in [0, 1)`. The official training script never passes it, so
        the function default 0.5 is what the paper's graph results used.
    weight_sign : {1, -1}, default 1
        :math:`\sigma`: ``+1`` up-weights negatives with high scores (the paper, Fig. 14);
        ``-1`` reproduces the official code, which up-weights low-scoring negatives.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` is the official scalar; ``"none"`` gives the per-node :math:`\ell_i`.

    Returns
    -------
    Tensor
        Scalar, or (n_nodes,) for ``reduction="none"``; dtype of ``l_enc`` (computed in at least
        float32, also under autocast).

    Notes
    -----
    The masked entries of the official code contribute constants and, for ``beta > 0``, one
    weight-1 column per node to the row normalisation; both are kept so that values and
    gradients match the official code. As a consequence ``beta -> 0+`` tends to the
    ``beta = 0`` value plus the constant :math:`G \log 2 \cdot \tau^+ / (1 - \tau^+) / (G - 1)`
    (same gradients). With ``beta = tau_plus = 0`` the loss is InfoGraph's JSD loss
    (:func:`infograph_jsd`).

    References
    ----------
    Robinson et al., "Contrastive Learning with Hard Negative Samples", ICLR 2021, Sec. 5.3 and
    App. (graph pseudo-code, Fig. 14). Sun et al., "InfoGraph", ICLR 2020.

    Examples
    --------
    >>> import torch
    >>> l, g = torch.randn(10, 8), torch.randn(3, 8)
    >>> batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    >>> infograph_jsd_hard(l, g, batch, beta=1.0).shape
    torch.Size([])
    """
    lt, gt, idx = _check_inputs(l_enc, g_enc, batch)
    beta = check_real("beta", beta, low=0.0)
    tau_plus = check_real("tau_plus", tau_plus, low=0.0, high=1.0, inclusive=(True, False))
    if isinstance(weight_sign, bool) or weight_sign not in (1, -1):
        raise ValueError(
            f"weight_sign must be +1 (paper) or -1 (official code), got {weight_sign!r}"
        )
    weight_sign = int(weight_sign)
    check_choice("reduction", reduction, _REDUCTIONS)
    out_dtype = lt.dtype
    n_graphs = gt.shape[0]
    c = tau_plus / (1.0 - tau_plus)
    with torch.autocast(lt.device.type, enabled=False):
        dtype = torch.promote_types(torch.promote_types(lt.dtype, gt.dtype), torch.float32)
        s = lt.to(dtype) @ gt.to(dtype).T  # (n, G)
        pos_mask = F.one_hot(idx, n_graphs).bool()  # (n, G), True at the node's own graph
        p = s.gather(1, idx[:, None]).squeeze(1)  # (n,)
        # softplus(x) as the official sp(-x) + x: torch's softplus returns x above x = 20, so
        # this form (not F.softplus(x)) is what matches the official values to ~1e-15
        sp_neg_p = F.softplus(-p)
        e_pos = _LOG2 - sp_neg_p - c * (sp_neg_p + p) - (n_graphs - 1) * c * _LOG2
        q = s.masked_fill(pos_mask, 0.0)
        sp_q = F.softplus(-q) + q
        if beta == 0.0:
            e_neg = (sp_q - _LOG2).masked_fill(pos_mask, 0.0).sum(1) / (1.0 - tau_plus)
        else:
            # a >= 0 is the official max(max q, |min q|) (q holds zeros); not detached, as there
            a = q.abs().amax()
            a = torch.where(a > 0, a, torch.ones_like(a))  # all-zero negatives: weights 1
            pi = torch.softmax((2.0 * weight_sign * beta) * q / a, dim=1)
            e_neg = n_graphs * ((pi * sp_q).sum(1) / (1.0 - tau_plus) - _LOG2)
        loss = e_neg / (n_graphs - 1) - e_pos
        loss = reduce_loss(loss, reduction)
    return loss.to(out_dtype)


def infograph_jsd(
    l_enc: Tensor, g_enc: Tensor, batch: Tensor, *, reduction: Reduction = "mean"
) -> Tensor:
    r"""InfoGraph's local-global Jensen-Shannon loss (the official ``measure="JSD"``).

    :math:`L = \frac{1}{n}\sum_i \operatorname{sp}(-p_i)
    + \frac{1}{n (G-1)} \sum_i \sum_{j \ne b_i} \operatorname{sp}(s_{ij}) - \log 2 \cdot 2`,
    written as :func:`infograph_jsd_hard` with ``beta = tau_plus = 0``.

    Parameters
    ----------
    l_enc : Tensor, shape (n_nodes, d)
        Node embeddings.
    g_enc : Tensor, shape (n_graphs, d)
        Graph embeddings, ``n_graphs >= 2``.
    batch : Tensor of int, shape (n_nodes,)
        Graph index of each node.
    reduction : {"mean", "sum", "none"}

    Returns
    -------
    Tensor
        Scalar, or (n_nodes,) for ``reduction="none"``.

    References
    ----------
    Sun et al., "InfoGraph: Unsupervised and Semi-supervised Graph-Level Representation Learning
    via Mutual Information Maximization", ICLR 2020.

    Examples
    --------
    >>> import torch
    >>> l, g = torch.randn(5, 4), torch.randn(2, 4)
    >>> infograph_jsd(l, g, torch.tensor([0, 0, 1, 1, 1])).shape
    torch.Size([])
    """
    return infograph_jsd_hard(l_enc, g_enc, batch, beta=0.0, tau_plus=0.0, reduction=reduction)
