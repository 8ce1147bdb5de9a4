"""CoMAT: collaborative modality adversarial training (NativE) — the generator of modality
embeddings and the WGAN-GP gradient penalty of its critic."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

PENALTIES = ("full", "head")


class ModalityGenerator(torch.nn.Module):
    r"""The generator of NativE's collaborative modality adversarial training (`Zhang et al.,
    SIGIR 2024 <https://arxiv.org/abs/2406.17605>`_, Sec. 3.3; spec ``NativE.md``, section 4;
    released ``CombinedGenerator``): synthesises the :math:`M - 1` non-structural modality
    embeddings of an entity from noise and all its real modality embeddings.

    .. math::
        [\tilde{\mathbf{e}}_2, \ldots, \tilde{\mathbf{e}}_M] = \mathbf{W}_2\,
        \mathrm{LeakyReLU}\big(\mathbf{W}_1 [\mathbf{z}; \mathbf{e}_1; \ldots;
        \mathbf{e}_M] + \mathbf{b}_1\big) + \mathbf{b}_2, \qquad
        \mathbf{z} \sim \mathcal{N}(0, I)

    Args:
        channels (int): Width :math:`F` of every modality embedding.
        num_modalities (int): :math:`M`, structure included (at least 2).
        noise_channels (int): Width of :math:`\mathbf{z}`. (default: :obj:`64`)
        hidden_channels (int): Hidden width. (default: :obj:`512`)

    Shapes:
        - **input:** real embeddings :math:`(B, M, F)`
        - **output:** fake non-structural embeddings :math:`(B, M - 1, F)`
    """

    def __init__(self, channels: int, num_modalities: int, noise_channels: int = 64,
                 hidden_channels: int = 512) -> None:
        super().__init__()
        if num_modalities < 2:
            raise ValueError(f"ModalityGenerator needs the structure and at least one "
                             f"modality to generate (num_modalities >= 2), got {num_modalities}")
        self.channels, self.num_modalities = channels, num_modalities
        self.noise_channels, self.hidden_channels = noise_channels, hidden_channels
        self.net = torch.nn.Sequential(
            torch.nn.Linear(noise_channels + num_modalities * channels, hidden_channels),
            torch.nn.LeakyReLU(),
            torch.nn.Linear(hidden_channels, (num_modalities - 1) * channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in self.net:
            if isinstance(layer, torch.nn.Linear):
                layer.reset_parameters()

    def forward(self, emb: Tensor, noise: Tensor | None = None) -> Tensor:
        if emb.shape[-2:] != (self.num_modalities, self.channels):
            raise ValueError(f"ModalityGenerator expects embeddings (B, {self.num_modalities}, "
                             f"{self.channels}), got {tuple(emb.shape)}")
        if noise is None:
            noise = torch.randn(*emb.shape[:-2], self.noise_channels, device=emb.device,
                                dtype=emb.dtype)
        out = self.net(torch.cat([noise, emb.flatten(-2)], dim=-1))
        return out.view(*emb.shape[:-2], self.num_modalities - 1, self.channels)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.channels}, num_modalities={self.num_modalities}, "
                f"noise_channels={self.noise_channels}, hidden_channels={self.hidden_channels})")


def gradient_penalty(critic: Callable[[list[Tensor]], Tensor], real: Sequence[Tensor],
                     fake: Sequence[Tensor], penalty: str = "full",
                     alpha: Tensor | None = None) -> Tensor:
    r"""The WGAN-GP gradient penalty (`Gulrajani et al., NeurIPS 2017
    <https://arxiv.org/abs/1704.00028>`_, Eq. 3) of a critic with several inputs.

    With one :math:`a_i \sim \mathcal{U}(0, 1)` per row :math:`i` shared by all inputs,
    :math:`\hat x_{i,j} = a_i x^{\mathrm{real}}_{i,j} + (1 - a_i) x^{\mathrm{fake}}_{i,j}`
    (real and fake taken as constants) and critic scores :math:`D(\hat x)_i`:

    .. math::
        \mathrm{GP} = \frac1B \sum_i \big(\|\nabla_{\hat x_{i,\cdot}} D(\hat x)_i\|_2 - 1\big)^2

    ``penalty="full"`` (the standard penalty) takes the norm of the gradient with respect to
    all the inputs of row :math:`i` together; ``penalty="head"`` only with respect to the
    first input, as NativE's released ``calc_gradient_penalty`` (``autograd.grad(...)[0]``).
    The result keeps its graph (``create_graph``): its gradient reaches the critic's
    parameters.

    Args:
        critic (Callable): Scores :obj:`(B,)` of a list of inputs shaped like ``real``;
            row :math:`i`'s score may depend on row :math:`i` of the inputs only (one
            backward pass of the summed scores then gives every row's own gradient).
        real (Sequence[Tensor]): Real inputs :obj:`(B, *)`.
        fake (Sequence[Tensor]): Fake inputs, same shapes.
        penalty (str): ``full`` or ``head``. (default: ``full``)
        alpha (Tensor, optional): The :math:`a_i` :obj:`(B,)`. (default: drawn)
    """
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    if len(real) != len(fake) or not real:
        raise ValueError(f"gradient_penalty needs as many real as fake inputs (at least one), "
                         f"got {len(real)} and {len(fake)}")
    b = real[0].size(0)
    if alpha is None:
        alpha = torch.rand(b, device=real[0].device, dtype=real[0].dtype)
    inter = []
    for x, y in zip(real, fake, strict=True):
        a = alpha.view(b, *([1] * (x.dim() - 1)))
        inter.append((a * x.detach() + (1 - a) * y.detach()).requires_grad_(True))
    scores = critic(inter)
    wrt = inter if penalty == "full" else inter[:1]
    grads = torch.autograd.grad(scores.sum(), wrt, create_graph=True)
    norm = torch.cat([g.reshape(b, -1) for g in grads], dim=1).norm(dim=1)
    return ((norm - 1) ** 2).mean()
