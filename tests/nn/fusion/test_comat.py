"""CoMAT parts: the modality generator and the WGAN-GP gradient penalty, the latter against
a row-by-row autograd computation written in the test."""

from __future__ import annotations

import pytest
import torch

from mmgnn.nn.fusion import ModalityGenerator, gradient_penalty

B, D1, D2 = 5, 4, 3


class _Critic(torch.nn.Module):
    """A critic with parameters and two inputs: f(x, y) = sum(tanh(x W) * (y V)) + c . x."""

    def __init__(self) -> None:
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(D1, 6))
        self.V = torch.nn.Parameter(torch.randn(D2, 6))
        self.c = torch.nn.Parameter(torch.randn(D1))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        x, y = inputs
        return (torch.tanh(x @ self.W) * (y @ self.V)).sum(-1) + x @ self.c


def _reference(critic, real, fake, alpha, head_only):
    """Per row: the interpolate, the gradient of that row's score alone, its norm."""
    terms = []
    for i in range(B):
        xs = [(alpha[i] * r[i] + (1 - alpha[i]) * f[i]).detach().requires_grad_(True)
              for r, f in zip(real, fake, strict=True)]
        score = critic([x[None] for x in xs])[0]
        wrt = xs[:1] if head_only else xs
        grads = torch.autograd.grad(score, wrt, create_graph=True)
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        terms.append((norm - 1) ** 2)
    return torch.stack(terms).mean()


@pytest.mark.parametrize("penalty", ["full", "head"])
def test_gradient_penalty_matches_row_by_row_autograd(penalty):
    torch.manual_seed(0)
    critic = _Critic()
    real = [torch.randn(B, D1), torch.randn(B, D2)]
    fake = [torch.randn(B, D1), torch.randn(B, D2)]
    alpha = torch.rand(B)
    got = gradient_penalty(critic, real, fake, penalty, alpha=alpha)
    ref = _reference(critic, real, fake, alpha, penalty == "head")
    torch.testing.assert_close(got, ref)
    # The penalty trains the critic: same parameter gradients as the reference.
    g_got = torch.autograd.grad(got, list(critic.parameters()))
    g_ref = torch.autograd.grad(ref, list(critic.parameters()))
    for a, b in zip(g_got, g_ref, strict=True):
        torch.testing.assert_close(a, b)
    assert any(g.abs().sum() > 0 for g in g_got)


def test_gradient_penalty_treats_samples_as_constants_and_checks_inputs():
    torch.manual_seed(0)
    critic = _Critic()
    real = [torch.randn(B, D1, requires_grad=True), torch.randn(B, D2)]
    fake = [torch.randn(B, D1, requires_grad=True), torch.randn(B, D2)]
    gp = gradient_penalty(critic, real, fake)
    gp.backward()
    assert real[0].grad is None and fake[0].grad is None
    full = gradient_penalty(critic, real, fake, "full", alpha=torch.full((B,), 0.3))
    head = gradient_penalty(critic, real, fake, "head", alpha=torch.full((B,), 0.3))
    assert not torch.allclose(full, head)
    with pytest.raises(ValueError, match="penalty must be one of"):
        gradient_penalty(critic, real, fake, "released")
    with pytest.raises(ValueError, match="as many real as fake"):
        gradient_penalty(critic, real, fake[:1])


def test_generator_shapes_noise_and_errors():
    torch.manual_seed(0)
    gen = ModalityGenerator(8, num_modalities=3, noise_channels=4, hidden_channels=16)
    emb = torch.randn(5, 3, 8)
    noise = torch.randn(5, 4)
    out = gen(emb, noise)
    assert out.shape == (5, 2, 8)
    torch.testing.assert_close(out, gen(emb, noise))
    ref = gen.net(torch.cat([noise, emb.reshape(5, 24)], dim=-1)).view(5, 2, 8)
    torch.testing.assert_close(out, ref)
    assert not torch.allclose(gen(emb), gen(emb))  # fresh noise each call
    assert not torch.allclose(gen(emb + 1, noise), out)
    assert repr(gen) == ("ModalityGenerator(8, num_modalities=3, noise_channels=4, "
                         "hidden_channels=16)")
    with pytest.raises(ValueError, match=r"\(B, 3, 8\)"):
        gen(torch.randn(5, 2, 8))
    with pytest.raises(ValueError, match="at least one modality"):
        ModalityGenerator(8, num_modalities=1)
