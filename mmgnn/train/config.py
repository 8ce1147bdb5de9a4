"""Settings of a run: what data (:class:`DataSpec`), what model (:class:`ModelSpec`), how to
optimise it (:class:`TrainConfig`); :class:`RunConfig` holds the three as a run folder's
``config.json`` ``{"data": ..., "model": ..., "train": ...}``.

Torch-free on purpose: ``mmgnn train --help`` imports this module to list choices and
defaults. Every check runs in ``__post_init__`` and raises a one-line :class:`ValueError` that
names the field and what it accepts, so misuse ends before any data is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

REGIMES = ("negative", "kvsall", "1vsall")
SAMPLERS = ("uniform", "bernoulli", "head_tail", "mmrns")
#: Names of the negative filters; which splits each holds is
#: :data:`mmgnn.sampling.NEGATIVE_FILTERS` (names only here, so that this module needs no
#: torch; a test checks they agree).
NEGATIVE_FILTERS = ("none", "train", "all_splits")
DEFAULT_LOSS = {"negative": "margin", "kvsall": "bce", "1vsall": "ce"}
#: The losses of each regime (names of :data:`mmgnn.nn.losses.LOSSES`).
REGIME_LOSSES = {"negative": ("margin", "softplus", "self_adversarial"), "kvsall": ("bce",),
                 "1vsall": ("ce", "bce")}
#: The BCE label-smoothing forms of :class:`~mmgnn.nn.losses.BCEWithLabelSmoothing` (kept
#: here as plain names so that this module needs no torch; a test checks they agree).
SMOOTHING_FORMS = ("standard", "released")
OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd", "row_adagrad")
#: ``none`` or a schedule name of :func:`transformers.get_scheduler` (with a warmup).
SCHEDULERS = ("none", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
              "constant_with_warmup", "inverse_sqrt")
BUDGET_CLOCKS = ("wall", "cpu")
TIES = ("optimistic", "pessimistic", "realistic")  # mmgnn.eval.ranking.TIES, torch-free


def _fail(name: str, expected: str, value: Any) -> None:
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def _choice(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        _fail(name, f"one of {tuple(allowed)}", value)


def _int_at_least(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        _fail(name, "a positive integer" if low == 1 else f"an integer >= {low}", value)


def _known(cls, values: dict, what: str) -> dict:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}; known: {sorted(known)}")
    return values


@dataclass
class DataSpec:
    """The data of a run.

    Args:
        dataset (str, optional): Known dataset name (``mmgnn datasets``) or a folder.
        root (str, optional): Folder holding the dataset folders.
        modalities (list[str]): Modality kinds of :mod:`mmgnn.modalities` to build (through
            the feature cache) and attach before the model is built (``text``, ``numeric``,
            ...).
        modality_args (dict): Settings per modality kind, e.g.
            ``{"text": {"encoder": "/path/to/model", "pooling": "cls"}}``.
        subset (dict, optional): Train on a part of the dataset (:mod:`mmgnn.data.subsets`):
            ``{"kind": "few_shot", "k": 8, "seed": 42}`` (the released k-shot training split)
            or ``{"kind": "neighbourhood", "entities": 1000, "seed": 0, "start": [...]}``.
    """

    dataset: str | None = None
    root: str | None = None
    modalities: list = field(default_factory=list)
    modality_args: dict = field(default_factory=dict)
    subset: dict | None = None

    def __post_init__(self) -> None:
        if self.dataset is not None and (not isinstance(self.dataset, str) or not self.dataset):
            _fail("data.dataset", "a dataset name or folder", self.dataset)
        if isinstance(self.modalities, str) or not all(
                isinstance(m, str) and m for m in self.modalities):
            _fail("data.modalities", "a list of modality names", self.modalities)
        if not isinstance(self.modality_args, dict) or not all(
                isinstance(v, dict) for v in self.modality_args.values()):
            _fail("data.modality_args", "a dict of {modality: {key: value}}", self.modality_args)
        if self.subset is not None and not (isinstance(self.subset, dict)
                                            and isinstance(self.subset.get("kind"), str)):
            _fail("data.subset", "a dict with a `kind` (few_shot, neighbourhood)", self.subset)
        unused = set(self.modality_args) - set(self.modalities)
        if unused:
            raise ValueError(f"data.modality_args names modalities {sorted(unused)} that "
                             f"data.modalities {self.modalities} does not build")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DataSpec:
        return cls(**_known(cls, values, "data"))


@dataclass
class ModelSpec:
    """What model to build: a registered name and the model's own keyword arguments
    (``build_model(spec.name, kg, **spec.args)``; ``dim``, ``reciprocal``, ``decoder``,
    ``p_norm``, dropouts, ...). Arguments that come from the graph (entity and relation
    counts, modality features) are filled by ``build_model``.

    Args:
        name (str): Registered model name (``transe``, ``imf``, ``native``, ...).
        args (dict): The model's keyword arguments; absent ones take the model's defaults.
    """

    name: str = "transe"
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail("model.name", "a registered model name", self.name)
        if not isinstance(self.args, dict):
            _fail("model.args", "a dict of keyword arguments", self.args)
        if "dim" in self.args:
            _int_at_least("model.args.dim", self.args["dim"], 1)

    def to_dict(self) -> dict:
        return {"name": self.name, "args": dict(self.args)}

    @classmethod
    def from_dict(cls, values: dict) -> ModelSpec:
        """Reads ``{"name": ..., "args": {...}}``; keys beside ``name`` and ``args`` are
        model arguments too (``{"name": "imf", "dim": 256}``, as a config file writes them)."""
        values = dict(values)
        name = values.pop("name", "transe")
        args = dict(values.pop("args", None) or {})
        args.update(values)
        return cls(name=name, args=args)


@dataclass
class TrainConfig:
    r"""How a model is optimised (``train`` in ``config.json``); nothing here says what model
    or data, so one config serves every system (link prediction and K3M's runs).

    Args:
        regime (str): ``negative`` (sLCWA: K corruptions per triple), ``kvsall`` (every
            distinct query against all entities, multi-hot targets) or ``1vsall`` (every
            triple against all entities, softmax). Link prediction only.
        loss (str): ``margin``, ``softplus``, ``self_adversarial`` (negative regime); ``bce``
            (kvsall); ``ce`` or ``bce`` (1vsall). Default: ``margin`` / ``bce`` / ``ce`` by
            regime.
        margin (float): Margin of the margin loss, or the :math:`\gamma` the
            self-adversarial loss adds to the scores.
        adversarial_temperature (float): :math:`\alpha` of the self-adversarial loss.
        label_smoothing (float): Label smoothing of the 1-to-all losses, in :math:`[0, 1)`.
        label_smoothing_form (str): BCE targets :math:`(1 - \epsilon) y + \epsilon / N`
            (``standard``) or :math:`(1 - \epsilon) y + 1 / N` (``released``: the released
            code of ConvE, TuckER and IMF); see :class:`~mmgnn.nn.losses.BCEWithLabelSmoothing`.
        num_negatives (int): Corruptions per positive (negative regime).
        sampler (str): ``uniform``, ``bernoulli``, ``head_tail`` (negative ``k`` corrupts
            the head for even ``k``, the tail for odd ``k``, as KBGAT and IMF's structural
            encoder train) or ``mmrns`` (learned hard negatives).
        sampler_args (dict): Constructor arguments of the sampler (``mmrns``: ``pre_sample``,
            ``text``, ``image``, ``lr``, ``contrastive``, ...).
        negative_filter (str): Redraw negatives that are known true triples of: ``train``
            (the training triples, as RotatE's and OpenKE's released samplers do), ``none``
            (plain uniform corruption, PyKEEN's default) or ``all_splits`` (train + valid +
            test: IMF's released structural encoder and KBGAT, kept for parity only; it lets
            held-out answers steer training, so it warns). (default: ``train``)
        optimizer (str): ``adam``, ``adamw``, ``adagrad``, ``sgd`` or ``row_adagrad``
            (:class:`~mmgnn.train.optim.RowAdagrad`: one accumulator per embedding row, for
            sparse entity tables, ``KGEModel(sparse=True)``).
        optimizer_args (dict): Further optimiser arguments (``betas``, ``eps``, ...).
        lr (float): Learning rate (> 0).
        weight_decay (float): Weight decay of the optimiser (>= 0).
        n3 (float): Weight of the N3 regulariser (Lacroix et al., 2018); 0 disables it.
        scheduler (str): Learning-rate schedule over the run's steps: ``none`` or a
            :func:`transformers.get_scheduler` name (``linear``: warmup then linear decay to
            0, ``cosine``, ``constant_with_warmup``, ...). (default: ``none``)
        warmup_steps (int): Steps of linear warmup. (default: :obj:`0`)
        warmup_ratio (float): Warmup as a fraction of all steps (``int(ratio * steps)``);
            give this or ``warmup_steps``, not both. (default: :obj:`0.0`)
        epochs (int): Maximum number of epochs (>= 1).
        batch_size (int): Triples (negative regime), queries (1-to-all) or items (K3M) per
            step (>= 1).
        eval_every (int): Validate every this many epochs (0: only at the end).
        patience (int): Stop after this many validations without a better validation MRR
            (0: never stop early).
        max_minutes (float, optional): Time budget of the whole run (> 0), validation
            included; the run validates once more and stops when it is spent.
        budget_clock (str): What ``max_minutes`` counts: ``wall`` (the wall clock) or ``cpu``
            (this process's CPU time over all threads divided by torch's thread count).
        eval_batch_size (int, optional): Queries per score matrix at evaluation.
        ties (str): Tie handling of the validation ranking.
        seed (int): Seed of every random draw of the run.
        device (str): ``cpu``, ``cuda``, ...
        deterministic (bool): Ask torch for deterministic kernels (see
            :func:`~mmgnn.train.seed_everything`). (default: :obj:`False`)
    """

    regime: str = "negative"
    loss: str | None = None
    margin: float = 1.0
    adversarial_temperature: float = 1.0
    label_smoothing: float = 0.0
    label_smoothing_form: str = "standard"
    num_negatives: int = 1
    sampler: str = "uniform"
    sampler_args: dict = field(default_factory=dict)
    negative_filter: str = "train"
    optimizer: str = "adam"
    optimizer_args: dict = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.0
    n3: float = 0.0
    scheduler: str = "none"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    epochs: int = 100
    batch_size: int = 1024
    eval_every: int = 5
    patience: int = 5
    max_minutes: float | None = None
    budget_clock: str = "wall"
    eval_batch_size: int | None = None
    ties: str = "realistic"
    seed: int = 0
    device: str = "cpu"
    deterministic: bool = False

    def __post_init__(self) -> None:
        _choice("regime", self.regime, REGIMES)
        if self.loss is None:
            self.loss = DEFAULT_LOSS[self.regime]
        if self.loss not in REGIME_LOSSES[self.regime]:
            raise ValueError(f"loss {self.loss!r} does not fit regime {self.regime!r}; "
                             f"choose one of {REGIME_LOSSES[self.regime]}")
        if self.n3 and self.regime == "kvsall":
            raise ValueError("n3 > 0 needs the triples of the batch: use regime '1vsall' or "
                             "'negative', or n3=0")
        if self.n3 < 0:
            _fail("n3", ">= 0", self.n3)
        _choice("label_smoothing_form", self.label_smoothing_form, SMOOTHING_FORMS)
        if not 0.0 <= self.label_smoothing < 1.0:
            _fail("label_smoothing", "in [0, 1)", self.label_smoothing)
        _int_at_least("num_negatives", self.num_negatives, 1)
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("negative_filter", self.negative_filter, NEGATIVE_FILTERS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.optimizer_args, dict):
            _fail("optimizer_args", "a dict", self.optimizer_args)
        if not isinstance(self.sampler_args, dict):
            _fail("sampler_args", "a dict", self.sampler_args)
        if not self.lr > 0:
            _fail("lr", "> 0", self.lr)
        if self.weight_decay < 0:
            _fail("weight_decay", ">= 0", self.weight_decay)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _int_at_least("warmup_steps", self.warmup_steps, 0)
        if not 0.0 <= self.warmup_ratio < 1.0:
            _fail("warmup_ratio", "in [0, 1)", self.warmup_ratio)
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("give warmup_steps or warmup_ratio, not both "
                             f"(got {self.warmup_steps} and {self.warmup_ratio})")
        if self.scheduler == "none" and (self.warmup_steps or self.warmup_ratio):
            raise ValueError("warmup_steps/warmup_ratio need a scheduler (e.g. scheduler="
                             "'linear' or 'constant_with_warmup'), got scheduler='none'")
        _int_at_least("epochs", self.epochs, 1)
        _int_at_least("batch_size", self.batch_size, 1)
        _int_at_least("eval_every", self.eval_every, 0)
        _int_at_least("patience", self.patience, 0)
        if self.max_minutes is not None and not self.max_minutes > 0:
            _fail("max_minutes", "> 0 (or None: no budget)", self.max_minutes)
        _choice("budget_clock", self.budget_clock, BUDGET_CLOCKS)
        if self.eval_batch_size is not None:
            _int_at_least("eval_batch_size", self.eval_batch_size, 1)
        _choice("ties", self.ties, TIES)

    def warmup(self, num_steps: int) -> int:
        """Warmup steps of a run of ``num_steps`` optimiser steps."""
        return self.warmup_steps or int(self.warmup_ratio * num_steps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        if "filtered_negatives" in values and "negative_filter" not in values:
            # Run folders written before 0.2 filtered with every split when this was true.
            values["negative_filter"] = "all_splits" if values.pop("filtered_negatives") \
                else "none"
        values.pop("filtered_negatives", None)
        return cls(**_known(cls, values, "training"))


#: Keys of the flat ``TrainConfig`` of run folders written before the split, and where they
#: go now.
LEGACY_MODEL_KEYS = ("model", "dim", "model_args", "reciprocal")
LEGACY_DATA_KEYS = ("modalities", "modality_args")


@dataclass
class RunConfig:
    """A run folder's ``config.json``: ``{"data": ..., "model": ..., "train": ...}``.

    Args:
        data (DataSpec): The data.
        model (ModelSpec): The model.
        train (TrainConfig): The optimisation.
    """

    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if isinstance(self.data, dict):
            self.data = DataSpec.from_dict(self.data)
        if isinstance(self.model, dict):
            self.model = ModelSpec.from_dict(self.model)
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)

    def to_dict(self) -> dict:
        return {"data": self.data.to_dict(), "model": self.model.to_dict(),
                "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Reads the new shape, or a run folder written before the split: ``{"dataset",
        "root", "deterministic", "train": {flat TrainConfig with model, dim, model_args,
        modalities, modality_args, reciprocal, (filtered_negatives)}}``."""
        values = dict(values)
        if isinstance(values.get("model"), str):  # a bare flat TrainConfig
            values = {"train": values}
        train = values.get("train")
        if {"dataset", "root", "deterministic"} & set(values) or (
                isinstance(train, dict) and set(LEGACY_MODEL_KEYS + LEGACY_DATA_KEYS) & set(train)):
            return cls._from_legacy(values)
        unknown = set(values) - {"data", "model", "train"}
        if unknown:
            raise ValueError(f"unknown run settings {sorted(unknown)}; known: "
                             f"['data', 'model', 'train']")
        return cls(DataSpec.from_dict(values.get("data") or {}),
                   ModelSpec.from_dict(values.get("model") or {}),
                   TrainConfig.from_dict(values.get("train") or {}))

    @classmethod
    def _from_legacy(cls, values: dict) -> RunConfig:
        train = dict(values.pop("train", None) or {})
        args: dict = {}
        if "dim" in train:
            args["dim"] = train.pop("dim")
        if "reciprocal" in train:
            args["reciprocal"] = train.pop("reciprocal")
        args.update(train.pop("model_args", None) or {})
        model = ModelSpec(name=train.pop("model", "transe"), args=args)
        data = DataSpec(dataset=values.pop("dataset", None), root=values.pop("root", None),
                        modalities=train.pop("modalities", None) or [],
                        modality_args=train.pop("modality_args", None) or {})
        if "deterministic" in values:
            train.setdefault("deterministic", bool(values.pop("deterministic")))
        return cls(data, model, TrainConfig.from_dict(train))


#: K3M's pretraining optimisation (``train_concap_struc.py``): AdamW, betas (0.9, 0.98), eps
#: 1e-8, weight decay 0.01 (not on biases and LayerNorms), 10% linear warmup, then linear
#: decay to 0.
K3M_PRETRAIN = {"epochs": 6, "batch_size": 8, "lr": 1e-4, "optimizer": "adamw",
                "optimizer_args": {"betas": [0.9, 0.98], "eps": 1e-8}, "weight_decay": 0.01,
                "scheduler": "linear", "warmup_ratio": 0.1}
#: K3M's item-classification fine-tuning: the pretraining optimiser, no warmup.
K3M_FINETUNE = {**K3M_PRETRAIN, "epochs": 20, "batch_size": 16, "lr": 3e-3,
                "warmup_ratio": 0.0}
#: Fields of the ``K3MTrainConfig`` of run folders written before the one trainer.
LEGACY_K3M_KEYS = ("epochs", "batch_size", "lr", "encoder_lr_scale", "weight_decay", "warmup",
                   "max_minutes", "budget_clock", "seed", "device")


def k3m_train_config(values: dict) -> tuple[TrainConfig, float]:
    """A K3M run's ``train`` settings as ``(TrainConfig, encoder_lr_scale)``: a
    :class:`TrainConfig` dict, or the ``K3MTrainConfig`` dict of a run folder written before
    the one trainer (``warmup`` is ``warmup_ratio``; the rest of the optimiser is
    :data:`K3M_PRETRAIN`'s)."""
    values = dict(values)
    scale = float(values.pop("encoder_lr_scale", 0.1))
    if "warmup" in values:
        unknown = set(values) - set(LEGACY_K3M_KEYS)
        if unknown:
            raise ValueError(f"unknown K3M training settings {sorted(unknown)}")
        values["warmup_ratio"] = values.pop("warmup")
        values = {**K3M_PRETRAIN, **values}
    return TrainConfig.from_dict(values), scale
