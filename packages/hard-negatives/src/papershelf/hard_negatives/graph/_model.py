"""InfoGraph with a GIN encoder (Sun et al., ICLR 2020), the model of HCL's graph experiments.

Follows the official ``graph/`` code of HCL (itself InfoGraph's): ``num_layers`` GIN
convolutions, each with a two-layer MLP, followed by ReLU and batch norm; every layer's node
features are sum-pooled per graph and the layers are concatenated, so node and graph embeddings
have ``hidden_dim * num_layers`` dimensions. Two heads (three ReLU layers plus a linear
shortcut) map them into the space where :func:`~papershelf.hard_negatives.graph.infograph_jsd_hard`
compares nodes with graphs; downstream classifiers read the pooled encoder output before the head.
Needs torch-geometric (the ``graph`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import GINConv, global_add_pool

__all__ = ["GINEncoder", "InfoGraph", "InfoGraphConfig"]


@dataclass
class InfoGraphConfig:
    """Sizes of :class:`InfoGraph` (defaults: the official graph runs)."""

    in_channels: int  # node feature size (the official runs use one-hot degrees when absent)
    hidden_dim: int = 32  # official --hidden-dim
    num_layers: int = 3  # official launch.sh: --num-gc-layers 3

    def __post_init__(self) -> None:
        for name in ("in_channels", "hidden_dim", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {name}={value!r}")

    @property
    def embedding_dim(self) -> int:
        """Size of node and graph embeddings: ``hidden_dim * num_layers``."""
        return self.hidden_dim * self.num_layers


class GINEncoder(nn.Module):
    """GIN layers (MLP, ReLU, batch norm), each layer sum-pooled, layers concatenated.

    Parameters
    ----------
    config : InfoGraphConfig
    """

    def __init__(self, config: InfoGraphConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_dim
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(config.num_layers):
            width = config.in_channels if i == 0 else h
            mlp = nn.Sequential(nn.Linear(width, h), nn.ReLU(), nn.Linear(h, h))
            self.convs.append(GINConv(mlp))
            self.norms.append(nn.BatchNorm1d(h))

    def forward(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Graph and node embeddings.

        Parameters
        ----------
        x : Tensor, shape (n_nodes, in_channels)
        edge_index : Tensor of int, shape (2, n_edges)
        batch : Tensor of int, shape (n_nodes,)
            Graph index of each node.
        num_graphs : int, optional
            Number of graphs (default ``batch.max() + 1``).

        Returns
        -------
        graph_emb : Tensor, shape (n_graphs, hidden_dim * num_layers)
        node_emb : Tensor, shape (n_nodes, hidden_dim * num_layers)
        """
        if x.ndim != 2 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"x must have shape (n_nodes, {self.config.in_channels}), got {tuple(x.shape)}"
            )
        layers = []
        for conv, norm in zip(self.convs, self.norms):
            x = norm(torch.relu(conv(x, edge_index)))
            layers.append(x)
        pooled = [global_add_pool(h, batch, size=num_graphs) for h in layers]
        return torch.cat(pooled, 1), torch.cat(layers, 1)


class _Head(nn.Module):
    """Three ReLU layers plus a linear shortcut (InfoGraph's ``FF``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)
        )
        self.shortcut = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.block(x)) + self.shortcut(x)


class InfoGraph(nn.Module):
    """GIN encoder with local (node) and global (graph) heads.

    Parameters
    ----------
    config : InfoGraphConfig

    Examples
    --------
    >>> import torch
    >>> model = InfoGraph(InfoGraphConfig(in_channels=4))
    >>> x, edges = torch.randn(5, 4), torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    >>> l_enc, g_enc = model(x, edges, torch.tensor([0, 0, 1, 1, 1]))
    >>> tuple(l_enc.shape), tuple(g_enc.shape)
    ((5, 96), (2, 96))
    """

    def __init__(self, config: InfoGraphConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = GINEncoder(config)
        self.local_head = _Head(config.embedding_dim)
        self.global_head = _Head(config.embedding_dim)
        # the official init: Xavier-uniform weights, zero biases for every linear layer
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """Node embeddings ``l_enc`` (n_nodes, d) and graph embeddings ``g_enc`` (n_graphs, d)
        after the heads, ``d = hidden_dim * num_layers``: the inputs of the loss."""
        graph_emb, node_emb = self.encoder(x, edge_index, batch, num_graphs)
        return self.local_head(node_emb), self.global_head(graph_emb)

    @torch.no_grad()
    def embed(
        self, x: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> Tensor:
        """Graph embeddings for downstream classifiers (pooled encoder output, no head),
        shape (n_graphs, hidden_dim * num_layers)."""
        return self.encoder(x, edge_index, batch, num_graphs)[0]
