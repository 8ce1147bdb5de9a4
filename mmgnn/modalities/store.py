"""The one place a model (or a learned sampler) holds per-entity modality features."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mmgnn.modalities.base import pool_sequence

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

#: ``prepare(name, x, mask, lengths) -> (x, mask, lengths)``: what a model keeps of an input.
Prepare = Callable[[str, Tensor, Tensor, "Tensor | None"], tuple[Tensor, Tensor, "Tensor | None"]]


def pool_vectors(name: str, x: Tensor, mask: Tensor, lengths: Tensor | None
         ) -> tuple[Tensor, Tensor, None]:
    r"""The :obj:`prepare` of a model that reads one vector per entity: float32 features, an
    :obj:`(N, L, d)` sequence mean-pooled over its valid positions
    (:func:`~mmgnn.modalities.base.pool_sequence`; without ``lengths``, over every position of
    the present rows), so :math:`x_i = \frac{1}{\ell_i} \sum_{l < \ell_i} x_{i,l}`. Returns
    ``(x (N, d), mask, None)``. Vectors :obj:`(N, d)` pass unchanged (as float32)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 3:
        x = pool_sequence(x, lengths if lengths is not None else torch.where(mask, x.size(1), 0))
    elif x.dim() != 2:
        raise ValueError(f"modality {name!r}: expected (N, d) vectors or (N, L, d) sequences, "
                         f"got {tuple(x.shape)}")
    return x, mask, None


class ModalityStore(torch.nn.Module):
    r"""Per-entity inputs of every modality a model reads, held as **non-persistent buffers**:
    they follow the model's :meth:`~torch.nn.Module.to` but stay out of its ``state_dict``
    (a checkpoint holds weights only; the features come from the graph).

    Modality ``m`` is three tensors: ``x_<m>`` (:obj:`(N, d)` vectors, :obj:`(N, L, d)`
    sequences or :obj:`(N, L)` integer token ids), ``mask_<m>`` (:obj:`(N,)` bool, the entity
    has it) and ``length_<m>`` (:obj:`(N,)` valid positions of a sequence, absent for vectors).
    :meth:`set` replaces them, which is how
    :func:`mmgnn.eval.robustness.robustness_sweep` evaluates a trained model under missing or
    noisy features; replacing keeps the number of entities and the width.

    A model that keeps a transformed input (mean-pooled sequences, normalised rows, truncated
    token sequences) gives ``prepare``; it runs in every :meth:`set`, so the replaced features
    go through the same transform. :meth:`with_prepare` gives a model its own prepared copy of
    a store built from the graph (:meth:`from_kg`).

    Args:
        features (Mapping[str, Tensor], optional): Input per modality name. (default: none)
        masks (Mapping[str, Tensor], optional): :obj:`(N,)` presence per modality.
            (default: all present)
        lengths (Mapping[str, Tensor], optional): :obj:`(N,)` valid lengths of sequences.
        prepare (callable, optional): ``prepare(name, x, mask, lengths) -> (x, mask,
            lengths)``, e.g. :func:`pool_vectors`. (default: keep the inputs as given)
        num_entities (int, optional): :math:`N`; every input must have as many rows.
            (default: the rows of the first input)
    """

    def __init__(self, features: Mapping[str, Tensor] | None = None,
                 masks: Mapping[str, Tensor] | None = None,
                 lengths: Mapping[str, Tensor] | None = None, *,
                 prepare: Prepare | None = None, num_entities: int | None = None) -> None:
        super().__init__()
        self.prepare = prepare
        self.num_entities = num_entities
        self._names: list[str] = []
        # Carries the device of the store across .to() while it holds nothing yet.
        self.register_buffer("_anchor", torch.empty(0), persistent=False)
        for name, x in (features or {}).items():
            self.set(name, x, (masks or {}).get(name), (lengths or {}).get(name))

    @classmethod
    def from_kg(cls, kg: MultiModalKG, names: list[str] | tuple[str, ...] | None = None, *,
                prepare: Prepare | None = None) -> ModalityStore:
        """The features of ``kg``'s modalities ``names`` (default: every one attached); a
        :class:`ValueError` naming the absent ones and how to attach them."""
        have = list(kg.modalities)
        names = have if names is None else list(names)
        absent = [m for m in names if m not in have]
        if absent:
            flag, which = ",".join(absent), "modalities" if len(absent) > 1 else "modality"
            raise ValueError(f"{kg.name}: no features for {which} {absent}; the graph has "
                             f"{have or 'none'} (attach them with "
                             f"--modalities {flag}, or mmgnn.modalities.attach_modalities(kg, "
                             f"{absent!r}))")
        return cls({m: kg.features[m] for m in names}, {m: kg.masks[m] for m in names},
                   {m: kg.lengths[m] for m in names if m in kg.lengths}, prepare=prepare,
                   num_entities=kg.num_entities)

    def with_prepare(self, prepare: Prepare | None) -> ModalityStore:
        """A new store holding ``prepare`` of this store's current inputs, and applying it
        to every later :meth:`set` (the tensors are shared where ``prepare`` keeps them)."""
        held = {m: self.get(m) for m in self._names}
        return ModalityStore({m: x for m, (x, _, _) in held.items()},
                             {m: mask for m, (_, mask, _) in held.items()},
                             {m: n for m, (_, _, n) in held.items() if n is not None},
                             prepare=prepare, num_entities=self.num_entities)

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> list[str]:
        """The modality names, in the order they were first set."""
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def get(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x, mask, lengths)`` of modality ``name`` as held (``lengths`` :obj:`None` for
        vectors)."""
        self._check_known(name)
        return (getattr(self, f"x_{name}"), getattr(self, f"mask_{name}"),
                getattr(self, f"length_{name}", None))

    def width(self, name: str) -> int:
        """The size of the last axis of modality ``name`` as held (feature width, or the
        sequence length of token ids)."""
        self._check_known(name)
        return getattr(self, f"x_{name}").size(-1)

    def set(self, name: str, x: Tensor, mask: Tensor | None = None,
            lengths: Tensor | None = None) -> None:
        """Holds (or replaces) modality ``name``: ``x`` with one row per entity, ``mask``
        :obj:`(N,)` (default: all present), ``lengths`` :obj:`(N,)` for sequences; through
        ``prepare`` if the store has one. A replacement must keep the width."""
        if not name.isidentifier():
            raise ValueError(f"modality name {name!r} must be a Python identifier")
        x = torch.as_tensor(x)
        if x.dim() < 2:
            raise ValueError(f"modality {name!r}: expected one row per entity, (N, d), (N, L, d) "
                             f"or (N, L) token ids, got shape {tuple(x.shape)}")
        mask = torch.ones(len(x), dtype=torch.bool) if mask is None \
            else torch.as_tensor(mask).bool()
        if lengths is not None:
            lengths = torch.as_tensor(lengths).long()
        if self.prepare is not None:
            x, mask, lengths = self.prepare(name, x, mask, lengths)
        n = self.num_entities if self.num_entities is not None else len(x)
        if len(x) != n:
            raise ValueError(f"modality {name!r}: expected {n} rows (one per entity), got "
                             f"features of shape {tuple(x.shape)}")
        for what, t in (("mask", mask), ("lengths", lengths)):
            if t is not None and tuple(t.shape) != (n,):
                raise ValueError(f"modality {name!r}: expected {what} of shape ({n},), got "
                                 f"{tuple(t.shape)}")
        if name in self._names and x.is_floating_point() and x.size(-1) != self.width(name):
            raise ValueError(f"modality {name!r}: expected features of width "
                             f"{self.width(name)} (as held), got shape {tuple(x.shape)}")
        device = self._anchor.device
        self.num_entities = n
        self.register_buffer(f"x_{name}", x.to(device), persistent=False)
        self.register_buffer(f"mask_{name}", mask.to(device, torch.bool), persistent=False)
        if lengths is not None:
            self.register_buffer(f"length_{name}", lengths.to(device), persistent=False)
        elif hasattr(self, f"length_{name}"):
            delattr(self, f"length_{name}")
        if name not in self._names:
            self._names.append(name)

    def _check_known(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(f"modality {name!r} is not held here; held: {self._names}")

    def extra_repr(self) -> str:
        return ", ".join(f"{m}={tuple(getattr(self, f'x_{m}').shape)}" for m in self._names)
