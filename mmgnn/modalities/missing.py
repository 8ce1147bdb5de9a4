"""What a model sees for an entity that lacks a modality: the fill strategies."""

from __future__ import annotations

import torch
from torch import Tensor

FILL_STRATEGIES = ("zeros", "mean", "learned")


def fill_missing(x: Tensor, mask: Tensor, strategy: str = "zeros",
                 placeholder: Tensor | None = None) -> Tensor:
    r"""Replaces the rows of absent entities (``mask`` :obj:`False`) of ``x``.

    .. math::
        \tilde{x}_i = \begin{cases} x_i & m_i \\ \mathbf{0} & \text{zeros} \\
        \frac{1}{|\{j : m_j\}|} \sum_{j : m_j} x_j & \text{mean} \\
        \mathbf{p} & \text{learned} \end{cases}

    ``mean`` is the modality mean over the present rows of the ``x`` given (zero if none is
    present); ``learned`` broadcasts ``placeholder`` (a parameter of shape ``x.shape[1:]``, or
    :obj:`(d,)` for a sequence) into each absent row. Gradients reach ``placeholder`` only
    from absent rows.

    Args:
        x (Tensor): :obj:`(N, d)` or :obj:`(N, L, d)` features.
        mask (Tensor): :obj:`(N,)` bool presence.
        strategy (str): ``zeros``, ``mean`` or ``learned``. (default: ``zeros``)
        placeholder (Tensor, optional): The learned vector (``learned`` only).
    """
    if strategy not in FILL_STRATEGIES:
        raise ValueError(f"fill strategy must be one of {FILL_STRATEGIES}, got {strategy!r}")
    keep = mask.view(-1, *([1] * (x.dim() - 1))).to(x.device)
    if strategy == "zeros":
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
    if strategy == "mean":
        count = mask.sum().clamp(min=1).to(x.dtype)
        fill = (x * keep.to(x.dtype)).sum(0) / count
    else:
        if placeholder is None:
            raise ValueError("fill strategy 'learned' needs the placeholder parameter")
        fill = placeholder
    return torch.where(keep, x, fill.expand_as(x))


class MissingModalityFill(torch.nn.Module):
    r"""A module applying :func:`fill_missing` with its own placeholder parameter.

    Args:
        channels (int): Feature width :math:`d` (the placeholder's size).
        strategy (str): ``zeros``, ``mean`` or ``learned``. (default: ``learned``)

    Shapes:
        - **input:** features :obj:`(N, d)` or :obj:`(N, L, d)`, mask :obj:`(N,)`
        - **output:** same shape as the features
    """

    def __init__(self, channels: int, strategy: str = "learned") -> None:
        super().__init__()
        if strategy not in FILL_STRATEGIES:
            raise ValueError(f"fill strategy must be one of {FILL_STRATEGIES}, got "
                             f"{strategy!r}")
        self.channels, self.strategy = channels, strategy
        if strategy == "learned":
            self.placeholder = torch.nn.Parameter(torch.empty(channels))
        else:
            self.register_parameter("placeholder", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.placeholder is not None:
            torch.nn.init.normal_(self.placeholder, std=0.02)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return fill_missing(x, mask, self.strategy, self.placeholder)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.channels}, strategy={self.strategy!r})"
