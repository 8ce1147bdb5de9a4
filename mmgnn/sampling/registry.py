"""The sampler registry: names of negative samplers, and the one builder the trainer calls."""

from __future__ import annotations

import inspect
import warnings
from typing import TYPE_CHECKING, Any

from mmgnn.utils.registry import Registry

if TYPE_CHECKING:
    from mmgnn.data.filter import FilterIndex
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.sampling.base import NegativeSampler

#: Which splits' triples a sampler's filter holds (``none``: no filter).
NEGATIVE_FILTERS: dict[str, tuple[str, ...] | None] = {
    "none": None, "train": ("train",), "all_splits": ("train", "valid", "test")}

#: Negative samplers by name. An entry builds a sampler as
#: ``builder(kg, num_negatives, negative_filter, **sampler_args)`` (a learned one also takes
#: ``model=``); :meth:`NegativeSampler.from_kg` is that builder for the fixed samplers.
SAMPLERS = Registry("sampler")


def register_sampler(name: str, target: Any = None, **fixed: Any):
    """Registers a sampler builder (or, without ``target``, decorates one) under ``name``;
    see :data:`SAMPLERS`."""
    return SAMPLERS.register(name, target, **fixed)


def check_negative_filter(negative_filter: str) -> str:
    """``negative_filter`` if it is a name of :data:`NEGATIVE_FILTERS`; a
    :class:`ValueError` naming them otherwise."""
    if negative_filter not in NEGATIVE_FILTERS:
        raise ValueError(f"unknown negative_filter {negative_filter!r}; known: "
                         f"{', '.join(NEGATIVE_FILTERS)}")
    return negative_filter


def negative_filter_index(kg: MultiModalKG, negative_filter: str = "train"
                          ) -> FilterIndex | None:
    """The known true triples a sampler avoids under ``negative_filter`` (see
    :data:`NEGATIVE_FILTERS`): the training triples by default, so that no valid or test
    triple decides which negatives training sees; ``all_splits`` only when asked for
    explicitly, with a warning; :obj:`None` for ``none``."""
    check_negative_filter(negative_filter)
    if negative_filter == "all_splits":
        warnings.warn(
            "negative_filter='all_splits' redraws negatives that are valid or test triples: "
            "held-out answers then steer training and test metrics come out optimistic. Use it "
            "only to reproduce released code that does this (IMF's structural encoder, KBGAT); "
            "the default 'train' filters with the training triples only", stacklevel=3)
    splits = NEGATIVE_FILTERS[negative_filter]
    return kg.filter_index(splits) if splits else None


def build_sampler(name: str, kg: MultiModalKG, num_negatives: int,
                  negative_filter: str = "train", model: Any = None,
                  **sampler_args: Any) -> NegativeSampler:
    """The sampler registered as ``name`` in :data:`SAMPLERS`, drawing ``num_negatives``
    corruptions per positive of ``kg``'s triples, filtered by ``negative_filter`` (see
    :func:`negative_filter_index`).

    Args:
        name (str): ``uniform``, ``bernoulli``, ``head_tail``, ``mmrns`` or a user's name.
        kg (MultiModalKG): The graph (entity count, training triples, filters, features).
        num_negatives (int): :math:`K`.
        negative_filter (str): ``train``, ``none`` or ``all_splits``. (default: ``train``)
        model (optional): The model, for a learned sampler that needs it (``mmrns``: its
            decoder's widths); ignored by samplers that do not take it.
        **sampler_args: The sampler's own arguments.
    """
    check_negative_filter(negative_filter)
    builder, _ = SAMPLERS.get(name)
    params = inspect.signature(builder).parameters
    if "model" in params:
        if model is None and params["model"].default is inspect.Parameter.empty:
            raise ValueError(f"sampler {name!r} needs the model")
        if model is not None:
            sampler_args["model"] = model
    return SAMPLERS.build(name, kg, num_negatives, negative_filter, **sampler_args)
