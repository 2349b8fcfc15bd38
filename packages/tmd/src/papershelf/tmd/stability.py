r"""GIN networks and the TMD stability bound (the paper's Figure 5 and Lipschitz theorem).

For an :math:`(L-1)`-layer GIN :math:`h_v^{(l)} = \phi_l\big(h_v^{(l-1)} + \sum_{u \in N(v)}
h_u^{(l-1)}\big)` with sum readout :math:`h(G) = \sum_v h_v^{(L-1)}`, update maps with
:math:`\phi_l(0) = 0` and Lipschitz constants :math:`K_l`,

.. math:: \lVert h(G_a) - h(G_b) \rVert \le \prod_{l} K_l \cdot \mathrm{TMD}^{L}_{w}(G_a, G_b)

with the Pascal weights :func:`~papershelf.tmd.pascal_weights` (``L = 3``: ``[1/2, 2]``).
Bias-free MLPs with ReLU satisfy :math:`\phi(0) = 0` and :math:`K \le \prod \lVert W \rVert_2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["GIN", "train_gin"]


class GIN(nn.Module):
    """Graph Isomorphism Network with sum readout (the official ``stability.py`` model).

    The convolutions live in an ``nn.ModuleList`` (the official script keeps them in a plain
    list, so they are never registered or trained).

    Parameters
    ----------
    in_channels : int
        Node feature dimension ``d``.
    hidden : int
        Width of every layer.
    num_layers : int
        GIN convolutions (TMD depth ``num_layers + 1`` bounds them).
    out_channels : int
        Logits of the two-layer head.
    bias : bool
        Biases in the convolution MLPs; ``False`` gives :math:`\\phi(0) = 0`, as the bound needs.
    """

    def __init__(
        self, in_channels: int, hidden: int = 32, num_layers: int = 3, out_channels: int = 1,
        *, bias: bool = True,
    ) -> None:  # fmt: skip
        from torch_geometric.nn import GINConv

        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_channels] + [hidden] * num_layers
        self.convs = nn.ModuleList(
            GINConv(
                nn.Sequential(
                    nn.Linear(dims[i], hidden, bias=bias),
                    nn.ReLU(),
                    nn.Linear(hidden, hidden, bias=bias),
                    nn.ReLU(),
                )
            )
            for i in range(num_layers)
        )
        self.lin1 = nn.Linear(hidden, hidden)
        self.lin2 = nn.Linear(hidden, out_channels)

    def embed(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor | None = None
              ) -> torch.Tensor:  # fmt: skip
        """Sum-pooled node embeddings :math:`h(G)`, shape (num_graphs, hidden)."""
        from torch_geometric.nn import global_add_pool

        for conv in self.convs:
            x = conv(x, edge_index)
        if batch is None:
            batch = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        return global_add_pool(x, batch)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Logits, shape (num_graphs, out_channels)."""
        return self.lin2(self.lin1(self.embed(x, edge_index, batch)).relu())

    def lipschitz_bound(self) -> float:
        r"""Upper bound :math:`\prod_l K_l` on the convolution MLPs' Lipschitz constants.

        The product of the spectral norms of their linear layers (ReLU is 1-Lipschitz).
        """
        out = 1.0
        for conv in self.convs:
            for m in conv.modules():
                if isinstance(m, nn.Linear):
                    out *= float(torch.linalg.matrix_norm(m.weight.detach(), ord=2))
        return out


def train_gin(
    model: GIN,
    graphs: Sequence[Any],
    *,
    epochs: int = 100,
    lr: float = 0.01,
    batch_size: int = 128,
    generator: torch.Generator | None = None,
) -> GIN:
    """Train ``model`` for binary graph classification (BCE on logit 0), as ``stability.py``.

    Parameters
    ----------
    model : GIN
        With ``out_channels=1``.
    graphs : sequence of torch_geometric.data.Data
        With ``y`` in {0, 1}.
    epochs, lr, batch_size
        Adam, the official script's defaults.
    generator : torch.Generator, optional
        Shuffling seed.
    """
    from torch_geometric.loader import DataLoader

    loader = DataLoader(list(graphs), batch_size=batch_size, shuffle=True, generator=generator)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        for batch in loader:
            opt.zero_grad()
            out = model(batch.x, batch.edge_index, batch.batch)[:, 0]
            loss_fn(out, batch.y.float()).backward()
            opt.step()
    model.eval()
    return model
