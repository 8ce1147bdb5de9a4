r"""K3M's missing- and noisy-modality robustness protocol, generalised to any model and modality.

K3M (Zhu et al., MM 2021, Sec. 4; ``../shared/specs/K3M.md`` Sec. 5) evaluates with a rate of
items whose title or image is removed (TMR, IMR, MMR) or replaced by noise (TNR, INR, TINR,
MNR). Its release has no code for these settings; this module fixes a precise protocol:

- A **setting** is ``missing:<mods>`` or ``noise:<mods>``. ``a`` affects modality ``a``;
  ``a+b`` affects every listed modality the chosen entity has (K3M's TINR; entity-level
  missing); ``a|b`` affects one of them per chosen entity, drawn uniformly among those it has
  (K3M's mixed MMR / MNR); ``a&b`` affects each listed modality on its own, a fraction
  :math:`\rho` of the entities that have it chosen independently per modality
  (modality-level missing: :math:`\rho` of the (entity, modality) pairs).
  The K3M names are aliases over ``text`` (title) and ``image``: :data:`K3M_SETTINGS`.
- At rate :math:`\rho`, exactly :math:`k = \lfloor \rho\, n + 1/2 \rfloor` entities are chosen among
  the :math:`n` that have at least one of the setting's modalities (for ``a&b``: per modality,
  among the :math:`n_m` that have it): the first :math:`k` of one seeded permutation, so a
  higher rate corrupts a superset of the entities of a lower one.
- **missing**: the modality's mask becomes :obj:`False` and its features zero.
- **noise**: ``swap`` replaces the features with those of another entity that has the
  modality (drawn uniformly, never itself); ``gaussian`` adds
  :math:`\sigma\, s_m \odot \varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`, with
  :math:`s_m` the per-dimension standard deviation of the modality over present entities and
  :math:`\sigma` = ``noise_scale``. The mask stays :obj:`True`: the model is not told.

:func:`corrupt_kg` applies a setting to a graph (for training under corruption, pass the
result to :func:`mmgnn.train.fit`); :func:`robustness_sweep` evaluates a trained model over
settings and rates and returns a :class:`RobustnessReport` (table, JSON, PNG plot). The
sweep ranks link-prediction triples by default; any other task passes its clean inputs
(``features``) and its metric (``metric_fn``), e.g. K3M's item classification with token-id
inputs (``missing`` empties them, ``swap`` noise takes another item's tokens).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from mmgnn.data.kg import MultiModalKG
from mmgnn.eval.ranking import evaluate

KINDS = ("missing", "noise")
NOISES = ("swap", "gaussian")
K3M_SETTINGS = {
    "TMR": "missing:text", "IMR": "missing:image", "MMR": "missing:text|image",
    "TNR": "noise:text", "INR": "noise:image", "TINR": "noise:text+image",
    "MNR": "noise:text|image",
}


@dataclass(frozen=True)
class Corruption:
    """One robustness setting: ``kind`` (``missing`` / ``noise``), the ``modalities`` it
    touches and whether a chosen entity loses one of them (``mixed``) or all."""

    kind: str
    modalities: tuple[str, ...]
    mixed: bool = False
    each: bool = False

    @classmethod
    def parse(cls, text: str) -> Corruption:
        """From ``missing:text``, ``noise:text+image``, ``missing:text|image``,
        ``missing:text&image`` or a K3M name (``TMR``, ``IMR``, ``MMR``, ``TNR``, ``INR``,
        ``TINR``, ``MNR``)."""
        spec = K3M_SETTINGS.get(text.strip().upper(), text.strip())
        kind, colon, mods = spec.partition(":")
        joins = [j for j in "+|&" if j in mods]
        names = tuple(m for m in mods.replace("|", "+").replace("&", "+").split("+") if m)
        if not colon or kind not in KINDS or not names or len(joins) > 1:
            raise ValueError(f"robustness setting {text!r}: expected 'missing:<m>' or "
                             f"'noise:<m>' with <m> one modality, 'a+b' (all), 'a|b' (one "
                             f"per entity), 'a&b' (each on its own), or a K3M name "
                             f"({', '.join(K3M_SETTINGS)})")
        return cls(kind, names, joins == ["|"], joins == ["&"])

    @property
    def label(self) -> str:
        join = "|" if self.mixed else ("&" if self.each else "+")
        return f"{self.kind}:{join.join(self.modalities)}"


@dataclass
class CorruptedFeatures:
    """Features after a corruption, and which entities it affected per modality."""

    features: dict[str, Tensor]
    masks: dict[str, Tensor]
    lengths: dict[str, Tensor]
    affected: dict[str, Tensor]  # (k_m,) entity ids per modality

    @property
    def num_entities_affected(self) -> int:
        ids = [a for a in self.affected.values() if len(a)]
        return len(torch.unique(torch.cat(ids))) if ids else 0


def corrupt_features(features: dict[str, Tensor], masks: dict[str, Tensor],
                     corruption: Corruption | str, rate: float, *,
                     lengths: dict[str, Tensor] | None = None, seed: int = 0,
                     noise: str = "swap", noise_scale: float = 1.0) -> CorruptedFeatures:
    """Applies ``corruption`` at ``rate`` (see the module docstring); inputs are not modified.

    Args:
        features (dict[str, Tensor]): :obj:`(N, d)` or :obj:`(N, L, d)` per modality.
        masks (dict[str, Tensor]): :obj:`(N,)` presence per modality.
        corruption (Corruption or str): The setting.
        rate (float): Fraction :math:`\\rho \\in [0, 1]` of eligible entities.
        lengths (dict[str, Tensor], optional): Valid lengths of sequence modalities.
        seed (int): Seed of the choice of entities, modalities, donors and noise.
        noise (str): ``swap`` or ``gaussian``. (default: ``swap``)
        noise_scale (float): :math:`\\sigma` of ``gaussian``. (default: :obj:`1.0`)
    """
    c = Corruption.parse(corruption) if isinstance(corruption, str) else corruption
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    absent = [m for m in c.modalities if m not in features]
    if absent:
        raise ValueError(f"setting {c.label!r} names modalities {absent} that the features "
                         f"lack (available: {sorted(features)})")
    lengths = lengths or {}
    g = torch.Generator().manual_seed(seed)
    present = torch.stack([masks[m].cpu() for m in c.modalities], dim=1)  # (N, M)
    eligible = present.any(dim=1).nonzero().view(-1)
    order = eligible[torch.randperm(len(eligible), generator=g)]
    # Drawn for every eligible entity, whatever the rate, so that choices are nested in rate.
    pick = torch.rand(len(eligible), present.size(1), generator=g)
    chosen = order[: int(rate * len(eligible) + 0.5)]  # round half up
    hit = torch.zeros_like(present)
    if c.each:
        for j in range(present.size(1)):
            own = present[:, j].nonzero().view(-1)
            own = own[torch.randperm(len(own), generator=g)]
            hit[own[: int(rate * len(own) + 0.5)], j] = True
    elif c.mixed:
        # One of the entity's present modalities, uniformly: argmax of random keys over them.
        keys = torch.where(present[order], pick, -1.0)
        one = torch.zeros_like(present[order])
        one[torch.arange(len(order)), keys.argmax(dim=1)] = True
        hit[order[: len(chosen)]] = one[: len(chosen)]
    else:
        hit[chosen] = present[chosen]
    out_x, out_mask = dict(features), dict(masks)
    out_len = {m: v for m, v in lengths.items()}
    affected: dict[str, Tensor] = {}
    for j, m in enumerate(c.modalities):
        ids = hit[:, j].nonzero().view(-1)
        affected[m] = ids
        x, mask = features[m].clone(), masks[m].clone()
        ln = lengths[m].clone() if m in lengths else None
        if c.kind == "missing":
            x[ids] = 0
            mask[ids] = False
            if ln is not None:
                ln[ids] = 0
        elif noise == "gaussian" and not x.is_floating_point():
            raise ValueError(f"noise 'gaussian' needs float features; {m!r} holds {x.dtype} "
                             f"(token ids?): use noise='swap'")
        elif noise == "swap":
            donors_pool = masks[m].nonzero().view(-1)
            if len(donors_pool) < 2 and len(ids):
                raise ValueError(f"noise 'swap' on {m!r} needs two entities with it")
            # A uniform other present entity: a uniform pool index, shifted past the entity.
            own = torch.searchsorted(donors_pool, ids)
            draw = torch.randint(len(donors_pool) - 1, (len(ids),), generator=g)
            donors = donors_pool[draw + (draw >= own).long()]
            x[ids] = features[m][donors]
            if ln is not None:
                ln[ids] = lengths[m][donors]
        else:
            flat = features[m][masks[m]].reshape(-1, x.size(-1)).float()
            std = flat.std(dim=0, unbiased=False) if len(flat) > 1 else torch.ones(x.size(-1))
            eps = torch.randn(len(ids), *x.shape[1:], generator=g)
            x[ids] = x[ids] + noise_scale * std * eps
            if ln is not None and x.dim() == 3:
                pos = torch.arange(x.size(1))
                x[ids] = x[ids] * (pos[None] < ln[ids][:, None])[..., None]
        out_x[m], out_mask[m] = x, mask
        if ln is not None:
            out_len[m] = ln
    return CorruptedFeatures(out_x, out_mask, out_len, affected)


def corrupt_kg(kg: MultiModalKG, corruption: Corruption | str, rate: float, *, seed: int = 0,
               noise: str = "swap", noise_scale: float = 1.0) -> MultiModalKG:
    """A shallow copy of ``kg`` whose features are corrupted by :func:`corrupt_features`
    (triples, texts and extras are shared with ``kg``)."""
    out = corrupt_features(kg.features, kg.masks, corruption, rate, lengths=kg.lengths,
                           seed=seed, noise=noise, noise_scale=noise_scale)
    copy_kg = copy.copy(kg)
    copy_kg.features, copy_kg.masks, copy_kg.lengths = out.features, out.masks, out.lengths
    return copy_kg


def default_settings(modalities: list[str]) -> list[str]:
    """``missing:m`` and ``noise:m`` per modality, plus ``missing:a|b``, ``noise:a+b`` and
    ``noise:a|b`` over all of them when there are several (K3M's seven settings for
    ``["text", "image"]``)."""
    out = [f"{k}:{m}" for k in KINDS for m in modalities]
    if len(modalities) > 1:
        out += [f"missing:{'|'.join(modalities)}", f"noise:{'+'.join(modalities)}",
                f"noise:{'|'.join(modalities)}"]
    return out


@dataclass
class RobustnessReport:
    """Metrics per setting and rate; ``rows`` hold ``setting``, ``rate``, ``affected``
    (entities corrupted) and the ranking metrics of the split."""

    rows: list[dict]
    split: str
    noise: str
    seed: int
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"split": self.split, "noise": self.noise, "seed": self.seed,
                **self.settings, "rows": self.rows}

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics of the rows (``mrr``, ``hits@k`` for ranking; any for others)."""
        return tuple(k for k, v in self.rows[0].items()
                     if k not in ("setting", "rate", "affected") and isinstance(v, float)) \
            if self.rows else ()

    def format(self, metrics: tuple[str, ...] | None = None) -> str:
        """An aligned table: one row per (setting, rate); ``metrics`` default to
        ``mrr, hits@1, hits@10`` for ranking, else all of :attr:`metric_names`."""
        if metrics is None:
            names = self.metric_names
            metrics = ("mrr", "hits@1", "hits@10") if "mrr" in names else names
        width = max([len("setting")] + [len(r["setting"]) for r in self.rows])
        head = (f"{'setting':<{width}}  {'rate':>5}  {'affected':>8}"
                + "".join(f"{m:>9}" for m in metrics))
        lines = [f"robustness on {self.split} (noise={self.noise}, seed={self.seed})", head]
        for r in self.rows:
            lines.append(f"{r['setting']:<{width}}  {r['rate']:>5.2f}  {r['affected']:>8}"
                         + "".join(f"{r[m]:>9.4f}" for m in metrics))
        return "\n".join(lines)

    def plot(self, path: str | Path, metric: str = "mrr") -> None:
        """A PNG of ``metric`` against the rate, one line per setting."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for setting in dict.fromkeys(r["setting"] for r in self.rows):
            rows = [r for r in self.rows if r["setting"] == setting]
            ax.plot([r["rate"] for r in rows], [r[metric] for r in rows], marker="o",
                    label=setting)
        ax.set_xlabel("rate of entities corrupted")
        ranking = bool(self.rows) and "mrr" in self.rows[0]
        ax.set_ylabel(f"{metric} ({self.split}{', filtered' if ranking else ''})")
        ax.set_title(f"robustness (noise: {self.noise})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)


class FeatureReader(Protocol):
    """What a robustness sweep needs of a model (a multimodal
    :class:`~mmgnn.models.LinkPredictor`, or e.g. :class:`~mmgnn.models.K3M` with
    ``metric_fn``): the names of the modalities it reads and a way to replace their
    features."""

    @property
    def modality_names(self) -> Sequence[str]: ...

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> Any: ...


def robustness_sweep(model: FeatureReader, kg: MultiModalKG | None,
                     settings: list[str] | None = None,
                     rates: list[float] = (0.0, 0.25, 0.5, 0.75, 1.0), *,
                     split: str = "test", seed: int = 0, noise: str = "swap",
                     noise_scale: float = 1.0, num_triples: int | None = None,
                     ties: str = "realistic", progress: bool = True,
                     features: dict[str, tuple[Tensor, Tensor, Tensor | None]] | None = None,
                     metric_fn: Callable[[], dict[str, float]] | None = None,
                     ) -> RobustnessReport:
    """Evaluates ``model`` on ``split`` with each setting at each rate.

    The model must read modality features through ``modality_names`` and
    ``set_modality(name, x, mask, lengths)`` (as :class:`~mmgnn.models.MultiModalKGE`
    does); its clean features are restored afterwards. Rate 0 is evaluated once and shared by
    every setting.

    Args:
        model (FeatureReader): The trained model (any module with ``modality_names`` and
            ``set_modality``, e.g. :class:`~mmgnn.models.K3M`, with ``metric_fn``).
        kg (MultiModalKG, optional): The graph whose features the corruptions start from
            (:obj:`None` with ``features`` and ``metric_fn``).
        settings (list[str], optional): Settings (:meth:`Corruption.parse`). (default:
            :func:`default_settings` of the model's modalities)
        rates (list[float]): Rates :math:`\\rho`. (default: 0, .25, .5, .75, 1)
        split (str): ``valid`` or ``test``. (default: ``test``)
        seed (int): Seed of the corruptions. (default: :obj:`0`)
        noise (str): ``swap`` or ``gaussian``. (default: ``swap``)
        noise_scale (float): :math:`\\sigma` of ``gaussian``. (default: :obj:`1.0`)
        num_triples (int, optional): Rank a seeded sample of this many triples of the split.
        ties (str): Tie policy of the ranking. (default: ``realistic``)
        progress (bool): Progress bars. (default: :obj:`True`)
        features (dict, optional): Clean ``(x, mask, lengths)`` per modality, for a model
            whose inputs are not ``kg``'s features (then ``kg`` may be :obj:`None`).
        metric_fn (callable, optional): Returns the metrics of the model as it stands (e.g.
            ``{"accuracy": ...}`` of a classifier on ``split``); replaces the ranking.
    """
    names = list(getattr(model, "modality_names", []))
    if not names or not hasattr(model, "set_modality"):
        raise TypeError(f"{type(model).__name__} reads no modality features (it needs "
                        f"modality_names and set_modality(), as MultiModalKGE has); "
                        f"corrupting features would not change its scores")
    parsed = [Corruption.parse(s) for s in (settings or default_settings(names))]
    for c in parsed:
        if any(m not in names for m in c.modalities):
            raise ValueError(f"setting {c.label!r} names modalities the model does not use "
                             f"(it uses {names})")
    if (features is None or metric_fn is None) and kg is None:
        raise ValueError("robustness_sweep needs kg, or both features= and metric_fn=")
    if features is not None:
        clean = {m: features[m][0] for m in names}
        masks = {m: features[m][1] for m in names}
        lengths = {m: features[m][2] for m in names if features[m][2] is not None}
    else:
        clean = {m: kg.features[m] for m in names}
        masks = {m: kg.masks[m] for m in names}
        lengths = {m: kg.lengths[m] for m in names if m in kg.lengths}
    triples = None
    if metric_fn is None:
        triples = kg.split(split)
        if num_triples is not None and num_triples < len(triples):
            pick = torch.randperm(len(triples), generator=torch.Generator().manual_seed(seed))
            triples = triples[pick[:num_triples]]

    def run() -> dict:
        if metric_fn is not None:
            return {k: float(v) for k, v in metric_fn().items()}
        res = evaluate(model, kg, split, triples=triples, ties=ties, progress=progress)
        return {k: v for k, v in res.both.to_dict().items() if k != "count"}

    rows, baseline = [], None
    try:
        for c in parsed:
            for rate in rates:
                out = corrupt_features(clean, masks, c, rate, lengths=lengths, seed=seed,
                                       noise=noise, noise_scale=noise_scale)
                if rate == 0 and baseline is not None:
                    metrics = baseline
                else:
                    for m in names:
                        model.set_modality(m, out.features[m], out.masks[m], out.lengths.get(m))
                    metrics = run()
                    if rate == 0:
                        baseline = metrics
                rows.append({"setting": c.label, "rate": float(rate),
                             "affected": out.num_entities_affected, **metrics})
    finally:
        for m in names:
            model.set_modality(m, clean[m], masks[m], lengths.get(m))
    extra = {"noise_scale": noise_scale}
    if triples is not None:
        extra.update(queries=2 * len(triples), ties=ties)
    return RobustnessReport(rows, split, noise, seed, extra)
