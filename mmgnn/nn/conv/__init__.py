"""Message-passing encoders, one file per layer, built like PyG's
:class:`~torch_geometric.nn.conv.GATConv`."""

from mmgnn.nn.conv.k3m_gat_conv import K3MGATConv
from mmgnn.nn.conv.kbgat_conv import KBGATConv

__all__ = ["K3MGATConv", "KBGATConv"]
