"""Extra parameter groups through the one Trainer: NativE's generator (CoMAT) is stepped by the
trainer's own optimiser for group ``"generator"`` on ``model.extra_losses()``, once per main
step, apart from the main optimiser, and the model holds no optimiser."""

from __future__ import annotations

import pytest
import torch

from mmgnn.models import NativE, build_model
from mmgnn.nn.losses import SelfAdversarialLoss
from mmgnn.sampling import NegativeBatch
from mmgnn.train import TrainConfig, Trainer
from tests.helpers import random_kg

CONFIG = dict(epochs=2, batch_size=50, num_negatives=4, lr=1e-2, loss="self_adversarial",
              eval_every=2)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _kg():
    kg = random_kg()
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(kg.num_entities, generator=g) > 0.3  # some entities without text
    kg.add_modality("text", torch.randn(kg.num_entities, 6, generator=g), mask)
    return kg


def _native(kg, seed: int = 0) -> NativE:
    torch.manual_seed(seed)
    return build_model("native", kg, dim=8, generator_lr=3e-3)


def _optimizers_in(module: torch.nn.Module) -> list[str]:
    """Attributes of ``module`` or any submodule that are (or hold) an optimiser."""
    found = []
    for prefix, sub in module.named_modules():
        for key, value in vars(sub).items():
            values = value.values() if isinstance(value, dict) else \
                value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, torch.optim.Optimizer) for v in values):
                found.append(f"{prefix}.{key}" if prefix else key)
    return found


def test_generator_group_is_stepped_by_the_trainer_not_the_main_optimiser():
    kg = _kg()
    model = _native(kg)
    assert model.generator is not None and not _optimizers_in(model)
    gen = {id(p) for p in model.generator.parameters()}
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    trainer = Trainer(model, kg, TrainConfig(**CONFIG), progress=False)
    assert set(trainer.optimizers) == {"model", "generator"}
    main = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    extra = trainer.optimizers["generator"]
    assert not {id(p) for p in main} & gen  # the critic's optimiser never touches them
    assert {id(p) for group in extra.param_groups for p in group["params"]} == gen
    assert {id(p) for p in main} | gen == {id(p) for p in model.parameters()}
    assert [g["lr"] for g in extra.param_groups] == [3e-3]  # generator_lr, not config.lr
    trainer.fit()
    assert trainer.steps == 2 * 4  # 200 training triples in batches of 50
    for name, p in model.named_parameters():
        if id(p) in gen:
            assert not torch.equal(p.detach(), before[name]), f"{name} never moved"
            # one generator step per main step, by the trainer's optimiser
            assert int(extra.state[p]["step"]) == trainer.steps, name
            assert p.grad is None  # gradients cleared after the extra step
    assert model.last_generator_loss is not None and model._pending is None
    assert not _optimizers_in(model)


def test_trainer_step_equals_critic_then_generator_adam_written_out():
    """One Trainer step against the same two updates done by hand: Adam on every parameter
    but the generator's with the critic loss, then Adam (lr = generator_lr) on the generator
    alone with the generator loss of the same positives."""
    kg = _kg()
    pos = kg.train[:6]
    neg = pos[:, None].repeat(1, 3, 1)
    neg[:, :, 2] = torch.tensor([[1, 2, 3]] * 6)
    batch = NegativeBatch(pos, neg)
    loss_fn = SelfAdversarialLoss(margin=0.0, temperature=2.0)
    cfg = TrainConfig(**{**CONFIG, "epochs": 1})

    model = _native(kg).train()
    trainer = Trainer(model, kg, cfg, progress=False)
    torch.manual_seed(5)  # the generator's noise
    trainer.step(model.loss(model.encode(), batch, loss_fn))

    ref = _native(kg).train()
    gen = list(ref.generator.parameters())
    own = {id(p) for p in gen}
    critic = torch.optim.Adam([p for p in ref.parameters() if id(p) not in own], lr=cfg.lr)
    generator = torch.optim.Adam(gen, lr=3e-3)
    torch.manual_seed(5)
    ref.loss(ref.encode(), batch, loss_fn).backward()
    critic.step()
    ref.zero_grad(set_to_none=True)
    ref.generator_loss(pos).backward(inputs=gen)
    generator.step()

    for (name, a), b in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_an_extra_loss_without_its_group_is_refused():
    class Stray(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def extra_losses(self) -> dict[str, torch.Tensor]:
            return {"critic2": self.w.sum()}

    trainer = Trainer(Stray(), _kg(), TrainConfig(**CONFIG), progress=False)
    with pytest.raises(ValueError, match="'critic2', which param_groups\\(\\) lacks"):
        trainer.step(trainer.model.w.pow(2).sum())
