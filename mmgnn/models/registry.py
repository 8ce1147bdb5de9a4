"""The model registry: names of link-prediction models, and :func:`build_model`.

Torch-free on purpose: the built-in entries are lazy ``"module:Name"`` paths, so that
``from mmgnn.models.registry import MODELS; MODELS.names()`` (``mmgnn train --help``) imports
no model. A user's model registers the same way as the built-in ones::

    from mmgnn.models import LinkPredictor, register_model

    @register_model("my_gnn")
    class MyGNN(LinkPredictor):
        def __init__(self, num_entities, num_relations, edge_index, edge_type, dim=200): ...

    model = build_model("my_gnn", kg, dim=64)  # the graph fills the rest
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from mmgnn.utils.registry import Registry

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG
    from mmgnn.models.base import LinkPredictor

#: Link-prediction models by name: a class (or builder) and its fixed keyword arguments.
MODELS = Registry("model")

#: Decoder names of :data:`mmgnn.nn.kge.DECODERS`, each a :class:`~mmgnn.models.KGEModel`.
KGE_DECODERS = ("transe", "distmult", "complex", "rotate", "pairre", "tucker")

for _decoder in KGE_DECODERS:
    MODELS.register(_decoder, "mmgnn.models.kge_model:KGEModel", decoder=_decoder)
MODELS.register("multimodal", "mmgnn.models.multimodal_kge:MultiModalKGE")
MODELS.register("gat_transe", "mmgnn.models.gat_transe:GATTransE")
MODELS.register("imf", "mmgnn.models.imf:IMF")
MODELS.register("mkgformer", "mmgnn.models.mkgformer:MKGformer")
MODELS.register("native", "mmgnn.models.native:NativE")

#: Constructor arguments that :func:`build_model` fills from the graph when not given.
DATA_ARGUMENTS = ("num_entities", "num_relations", "modalities", "edge_index", "edge_type",
                  "kg")


def register_model(name: str, target: Any = None, **fixed: Any):
    """Registers a model class (or builder) under ``name`` with ``fixed`` keyword arguments;
    without ``target``, a class decorator. See :data:`MODELS`."""
    return MODELS.register(name, target, **fixed)


def available_models() -> list[str]:
    """Names accepted by :func:`build_model` (and ``mmgnn train --model``)."""
    return MODELS.names()


def build_model(name: str, kg: MultiModalKG, *, modality_names: list[str] | None = None,
                **kwargs: Any) -> LinkPredictor:
    """Builds the model registered as ``name``, sized for ``kg``.

    ``kwargs`` are the model's own keyword arguments (``dim``, ``reciprocal``, ``p_norm``,
    ...). The *data-derived* ones are filled from ``kg`` where the constructor takes them and
    the caller did not pass them: ``num_entities``, ``num_relations``, ``modalities`` (a
    :class:`~mmgnn.modalities.ModalityStore` of ``kg``'s features, only ``modality_names`` if
    given), ``edge_index`` / ``edge_type`` (the training graph,
    :meth:`~mmgnn.data.MultiModalKG.train_graph`) and ``kg`` itself.

    Raises:
        KeyError: ``name`` is not registered (the message lists the names and the closest).
        TypeError: an argument the model does not take.
    """
    target, fixed = MODELS.get(name)
    params = inspect.signature(target).parameters
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not open_kwargs:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            own = [p for p in params if p not in DATA_ARGUMENTS and p not in fixed
                   and params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
            raise TypeError(f"model {name!r} takes no argument {', '.join(map(repr, unknown))}; "
                            f"its arguments: {', '.join(own)}")
    data: dict[str, Any] = {}
    wanted = [p for p in DATA_ARGUMENTS if p in params and p not in kwargs and p not in fixed]
    if "num_entities" in wanted:
        data["num_entities"] = kg.num_entities
    if "num_relations" in wanted:
        data["num_relations"] = kg.num_relations
    if "edge_index" in wanted or "edge_type" in wanted:
        edge_index, edge_type = kg.train_graph()
        if "edge_index" in wanted:
            data["edge_index"] = edge_index
        if "edge_type" in wanted:
            data["edge_type"] = edge_type
    if "modalities" in wanted:
        from mmgnn.modalities.store import ModalityStore

        data["modalities"] = ModalityStore.from_kg(kg, modality_names)
    elif modality_names is not None and "modalities" not in params:
        raise TypeError(f"model {name!r} reads no modalities; got modality_names="
                        f"{modality_names}")
    if "kg" in wanted:
        data["kg"] = kg
    return MODELS.build(name, **data, **kwargs)
