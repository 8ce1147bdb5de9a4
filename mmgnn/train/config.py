"""Settings of a training run, saved with the run and used to rebuild the model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mmgnn.nn.losses import SMOOTHING_FORMS

REGIMES = ("negative", "kvsall", "1vsall")
SAMPLERS = ("uniform", "bernoulli", "head_tail", "mmrns")
#: Which splits' triples a negative is checked against (and redrawn if it is one of them).
NEGATIVE_FILTERS = {"none": None, "train": ("train",), "all_splits": ("train", "valid", "test")}
DEFAULT_LOSS = {"negative": "margin", "kvsall": "bce", "1vsall": "ce"}


@dataclass
class TrainConfig:
    """Everything that defines a training run (``config.json`` in the run folder).

    Args:
        model (str): Model or decoder name (``transe``, ``rotate``, ``complex``, ...).
        dim (int): Embedding size (complex models: complex dimensions).
        model_args (dict): Extra constructor arguments of the decoder/model (``p_norm``,
            ``margin``, dropouts, ...).
        modalities (list[str]): Modality kinds of :mod:`mmgnn.modalities` to build (through
            the feature cache) and attach before the model is built (``text``, ``numeric``,
            ...); the ``multimodal`` model uses them.
        modality_args (dict): Settings per modality kind, e.g.
            ``{"text": {"encoder": "/path/to/model", "pooling": "cls"}}``.
        reciprocal (bool): Answer head queries through inverse relations.
        regime (str): ``negative`` (sLCWA: K corruptions per triple), ``kvsall`` (every
            distinct query against all entities, multi-hot targets) or ``1vsall`` (every
            triple against all entities, softmax).
        loss (str): ``margin``, ``softplus``, ``self_adversarial`` (negative regime); ``bce``
            (kvsall); ``ce`` (1vsall). Default: ``margin`` / ``bce`` / ``ce`` by regime.
        margin (float): Margin of the margin loss, or the :math:`\\gamma` the
            self-adversarial loss adds to the scores.
        adversarial_temperature (float): :math:`\\alpha` of the self-adversarial loss.
        label_smoothing (float): Label smoothing of the 1-to-all losses.
        label_smoothing_form (str): BCE targets :math:`(1 - \\epsilon) y + \\epsilon / N`
            (``standard``) or :math:`(1 - \\epsilon) y + 1 / N` (``released``: the released
            code of ConvE, TuckER and IMF); see :class:`~mmgnn.nn.losses.BCEWithLabelSmoothing`.
        num_negatives (int): Corruptions per positive (negative regime).
        sampler (str): ``uniform``, ``bernoulli`` or ``head_tail`` (negative ``k`` corrupts
            the head for even ``k``, the tail for odd ``k``: with ``num_negatives=2``, one of
            each, as KBGAT and IMF's structural encoder train) or ``mmrns`` (learned hard
            negatives, :class:`~mmgnn.sampling.MMRNSSampler`).
        sampler_args (dict): Constructor arguments of a learned sampler (``mmrns``:
            ``pre_sample``, ``text``, ``image``, ``lr``, ``contrastive``, ...).
        negative_filter (str): Redraw negatives that are known true triples of: ``train``
            (the training triples, as RotatE's and OpenKE's released samplers do), ``none``
            (plain uniform corruption, PyKEEN's default) or ``all_splits`` (train + valid +
            test: the form of IMF's released structural encoder and of KBGAT, kept for
            parity only; it lets held-out answers steer training, so it warns). The
            ``mmrns`` sampler always masks the training answers. (default: ``train``)
        optimizer (str): ``adam``, ``adagrad`` or ``sgd``.
        lr (float): Learning rate.
        weight_decay (float): L2 weight decay of the optimiser.
        n3 (float): Weight of the N3 regulariser (Lacroix et al., 2018); 0 disables it.
        epochs (int): Maximum number of epochs.
        batch_size (int): Triples (negative regime) or queries (1-to-all) per step.
        eval_every (int): Validate every this many epochs (0: only at the end).
        patience (int): Stop after this many validations without a better validation MRR
            (0: never stop early).
        max_minutes (float, optional): Time budget of the whole run, validation
            included; the run validates once more and stops when it is spent.
        budget_clock (str): What ``max_minutes`` counts: ``wall`` (the wall clock) or ``cpu``
            (this process's CPU time over all threads divided by torch's thread count: on an
            idle machine it tracks the wall clock, on a shared one it gives runs compared at
            the same budget the same compute).
        eval_batch_size (int, optional): Queries per score matrix at evaluation.
        ties (str): Tie handling of the validation ranking.
        seed (int): Seed of every random draw of the run.
        device (str): ``cpu``, ``cuda``, ...
    """

    model: str = "transe"
    dim: int = 200
    model_args: dict = field(default_factory=dict)
    modalities: list = field(default_factory=list)
    modality_args: dict = field(default_factory=dict)
    reciprocal: bool = False
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
    lr: float = 1e-3
    weight_decay: float = 0.0
    n3: float = 0.0
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

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {self.regime!r}")
        if self.loss is None:
            self.loss = DEFAULT_LOSS[self.regime]
        allowed = {"negative": ("margin", "softplus", "self_adversarial"),
                   "kvsall": ("bce",), "1vsall": ("ce", "bce")}[self.regime]
        if self.loss not in allowed:
            raise ValueError(f"loss {self.loss!r} does not fit regime {self.regime!r}; "
                             f"choose one of {allowed}")
        if self.n3 and self.regime == "kvsall":
            raise ValueError("the N3 regulariser needs the triples of the batch: use regime "
                             "'1vsall' or 'negative' with n3 > 0")
        if self.label_smoothing_form not in SMOOTHING_FORMS:
            raise ValueError(f"label_smoothing_form must be one of {SMOOTHING_FORMS}, got "
                             f"{self.label_smoothing_form!r}")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"budget_clock must be 'wall' or 'cpu', got {self.budget_clock!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.negative_filter not in NEGATIVE_FILTERS:
            raise ValueError(f"negative_filter must be one of {tuple(NEGATIVE_FILTERS)}, got "
                             f"{self.negative_filter!r}")
        if self.optimizer not in ("adam", "adagrad", "sgd"):
            raise ValueError(f"optimizer must be adam, adagrad or sgd, got {self.optimizer!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        if "filtered_negatives" in values and "negative_filter" not in values:
            # Run folders written before 0.2 filtered with every split when this was true.
            values = dict(values)
            values["negative_filter"] = "all_splits" if values.pop("filtered_negatives") \
                else "none"
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
