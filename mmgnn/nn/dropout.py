"""Dropout masks drawn as uniform numbers, for the layers whose dropout is a hot spot on CPU."""

from __future__ import annotations

import torch
from torch import Tensor


def keep_mask(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    r"""A dropout keep-mask of ``x``'s shape, dtype and device: :math:`\lceil u - p \rceil
    \in \{0, 1\}` for :math:`u \sim \mathcal{U}[0, 1)`, so every element is kept with
    probability :math:`1 - p` (up to the :math:`2^{-24}` resolution of a float32 uniform draw),
    independently, as by :func:`torch.nn.functional.dropout`.

    Why not ``bernoulli_``: on CPU one ``uniform_`` draw and two vectorised passes cost about
    a third of torch's Bernoulli draws (measured on the IMF training step, where the
    :obj:`(B, d, d)` masks of TuckER's :math:`\mathbf{W}_r` dropout dominated).
    The values of ``x`` are not read (tests replace this function by one keyed on them).

    Args:
        x (Tensor): The tensor to be masked.
        p (float): Drop probability, in :math:`(0, 1)`.
        generator (torch.Generator, optional): Source of the draws (default: torch's).
    """
    return torch.empty_like(x).uniform_(generator=generator).sub_(p).ceil_()


def dropout(x: Tensor, p: float, training: bool = True,
            generator: torch.Generator | None = None) -> Tensor:
    r"""Inverted dropout :math:`x \odot m / (1 - p)` with :math:`m` from :func:`keep_mask`;
    the identity when not ``training`` or :math:`p = 0`, zeros when :math:`p = 1`."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    return x * keep_mask(x, p, generator) * (1.0 / (1.0 - p))
