"""MMRNS: relation-enhanced multimodal hard-negative sampling (Xu et al., ACM MM 2022)."""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.data.filter import FilterIndex
from mmgnn.modalities.store import ModalityStore
from mmgnn.nn.fusion.kca import KCA
from mmgnn.nn.kge.base import KGEDecoder
from mmgnn.sampling.base import NegativeSampler

if TYPE_CHECKING:
    from mmgnn.data.kg import MultiModalKG

CONTRASTIVE_FORMS = ("query", "batch")
SIDES = ("alternate", "tail", "head")
# Score given to a slot that could not be filled (fewer allowed candidates than K): every
# negative-sampling loss of mmgnn gives it zero loss and zero self-adversarial weight.
EMPTY_SLOT_SCORE = -1e9
ROLES = ("text", "image")
#: Values per :obj:`(U_{slice}, P, \cdot)` tensor of the modality views' KCA grid (see
#: :meth:`MMRNSSampler._similarities`): small enough to be reused from the allocator's cache.
GRID_ELEMENTS = 2**23


class RowScoredModel(Protocol):
    """What MMRNS needs of a model: its decoder scores representation rows, ``score_triples``
    scores entity ids against ``x``, and ``fused_corruptions`` says the two agree
    (:class:`~mmgnn.models.LinkPredictor`'s capability attribute)."""

    decoder: KGEDecoder
    fused_corruptions: bool

    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor: ...


def exploration_temperature(step: int, initial: float = 10.0) -> float:
    r"""MMRNS's exploration temperature :math:`\tau = \tau_0 / (1 + \ln(s + 1))` at training
    step :math:`s \ge 0` (released ``run_gumbel.py``; spec ``MMRNS.md``, section 3)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return initial / (1.0 + math.log(step + 1))


def gumbel_top_k(logits: Tensor, k: int, generator: torch.Generator | None = None,
                 ) -> tuple[Tensor, Tensor, Tensor]:
    r"""Draws :math:`K` distinct items per row from :math:`p \propto e^{\ell}` without
    replacement, with straight-through one-hot outputs.

    With Gumbel noise :math:`g_p` and :math:`z = \ell + g`, the top-:math:`K` of :math:`z` in
    order is a sample of sequential draws without replacement (Plackett-Luce; Kool et al.,
    2019): draw :math:`k` picks item :math:`p` with probability
    :math:`e^{\ell_p} / \sum_{q \notin S_{<k}} e^{\ell_q}`. This is what the released code's
    :math:`K` successive ``gumbel_softmax(hard=True)`` calls with the chosen entries removed
    draw (one noise sample instead of :math:`K`; same distribution). Draw :math:`k`'s output
    is :math:`y_k = \mathrm{onehot}_k - \mathrm{sg}(s_k) + s_k` with
    :math:`s_k = \mathrm{softmax}(z \text{ without } S_{<k})` (Gumbel-softmax at
    temperature 1, Jang et al., 2017): its value is the one-hot, its gradient the soft one.
    Items with :math:`\ell = -\infty` are never drawn; a row with fewer than :math:`K`
    drawable items marks the extra draws invalid.

    Args:
        logits (Tensor): :obj:`(B, P)` unnormalised log-probabilities (``-inf``: excluded).
        k (int): Draws per row.
        generator (torch.Generator, optional): Source of the Gumbel noise (drawn on CPU).

    Returns:
        ``(index, y, valid)``: positions :obj:`(B, K)`, straight-through one-hots
        :obj:`(B, K, P)` and :obj:`(B, K)` validity.
    """
    z, index, valid = _perturb(logits, k, generator)
    b, p = logits.shape
    rank = torch.full((b, p), k, dtype=torch.long, device=logits.device)
    rank.scatter_(1, index, torch.arange(k, device=logits.device).expand(b, k))
    removed = rank[:, None, :] < torch.arange(k, device=logits.device)[None, :, None]
    z_k = z[:, None, :].masked_fill(removed, float("-inf"))
    # an empty draw (nothing left to draw) would be a softmax of -inf only: NaN, also in the
    # backward pass; it gets zeros instead
    z_k = torch.where(valid[..., None], z_k, torch.zeros((), device=z.device))
    soft = torch.softmax(z_k, dim=-1) * valid[..., None]
    hard = F.one_hot(index, p).to(soft.dtype) * valid[..., None]
    return index, hard - soft.detach() + soft, valid


def _perturb(logits: Tensor, k: int, generator: torch.Generator | None
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Gumbel-perturbed logits :obj:`(B, P)`, the top-:math:`K` positions in order and their
    validity (a finite perturbed logit)."""
    b, p = logits.shape
    if k > p:
        raise ValueError(f"cannot draw {k} distinct items from {p}")
    u = torch.rand((b, p), generator=generator).clamp_(1e-20, 1.0 - 1e-7).to(logits.device)
    z = logits - u.log_().neg_().log_()  # log(-log u), in place: no (B, P) temporaries
    top, index = z.detach().topk(k, dim=1)
    return z, index, torch.isfinite(top)


def gumbel_top_k_rows(logits: Tensor, x: Tensor, k: int,
                      generator: torch.Generator | None = None
                      ) -> tuple[Tensor, Tensor, Tensor]:
    r"""The rows :math:`y_k^\top X` of :func:`gumbel_top_k`'s straight-through draws, without
    its :obj:`(B, K, P)` one-hots: same draws for the same generator state, same values
    (row :math:`X_{i_k}` of each drawn item, zero for an empty draw) and same gradients.

    The value is the hard row :math:`X_{i_k}`; the gradient reaches :math:`X` through the hard
    row only and the perturbed logits :math:`z` through the soft weights :math:`s_k` (the
    softmax of :math:`z` over the items not drawn before draw :math:`k`), as for
    :math:`(\mathrm{onehot}_k - \mathrm{sg}(s_k) + s_k)^\top X`. Only the backward pass
    needs :math:`s_k`, and it needs no :obj:`(B, K, P)` tensor: with :math:`w = e^{z - \max z}`,
    :math:`R` the items never drawn, :math:`G_k` the gradient of row :math:`k`,
    :math:`D_k = \sum_{p \in R} w_p + \sum_{j \ge k} w_{i_j}` (the softmax denominator of
    draw :math:`k`), :math:`M_{kj} = G_k \cdot X_{i_j}` and
    :math:`\beta_k = G_k \cdot s_k^\top X / D_k` with
    :math:`G_k \cdot s_k^\top X = (G_k \cdot \sum_{p \in R} w_p X_p
    + \sum_{j \ge k} w_{i_j} M_{kj}) / D_k`, the softmax backward
    :math:`\partial z_p = \sum_k s_{kp}\, G_k \cdot (X_p - s_k^\top X)` is

    .. math::
        \partial z_p = w_p \Big(X_p \cdot \sum_k \frac{G_k}{D_k} - \sum_k \beta_k\Big)
        \;(p \in R), \qquad
        \partial z_{i_j} = w_{i_j} \sum_{k \le j} \Big(\frac{M_{kj}}{D_k} - \beta_k\Big)

    (an item drawn at :math:`j` is in the softmaxes of draws :math:`k \le j` only). The weights
    are taken relative to each draw's own maximum (draw :math:`k`'s largest remaining item is
    :math:`i_k`) and, for the never-drawn items, to the last draw's value, which bounds them: every
    weight lies in [0, 1] and every denominator in [1, P], so no logit gap under- or overflows
    (the :obj:`(B, K)` and :obj:`(B, K, K)` terms in float64). Forward cost: a gather;
    backward: two :math:`(B, P) \times (P, d)` products and :math:`O(BK(K + d))`.

    Args:
        logits (Tensor): :obj:`(B, P)` unnormalised log-probabilities (``-inf``: excluded).
        x (Tensor): :obj:`(P, d)` rows to select.
        k (int): Draws per row.
        generator (torch.Generator, optional): Source of the Gumbel noise (drawn on CPU).

    Returns:
        ``(index, rows, valid)``: positions :obj:`(B, K)`, rows :obj:`(B, K, d)` and
        :obj:`(B, K)` validity.
    """
    z, index, valid = _perturb(logits, k, generator)
    return index, _StraightThroughRows.apply(z, x, index, valid), valid


class _StraightThroughRows(torch.autograd.Function):
    """Value: the drawn rows of ``x``; gradient: :func:`gumbel_top_k_rows`'s."""

    @staticmethod
    def forward(ctx, z: Tensor, x: Tensor, index: Tensor, valid: Tensor) -> Tensor:
        rows = x[index]  # (B, K, d), kept for the backward pass's M (no second gather)
        ctx.save_for_backward(z.detach(), x.detach(), index, valid, rows)
        # (B, K, d) products by an all-ones mask (the usual case) skipped: same values
        ctx.all_valid = bool(valid.all())
        return rows if ctx.all_valid else rows * valid[..., None].to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        z, x, index, valid, rows = ctx.saved_tensors
        if not ctx.all_valid:
            grad = grad * valid[..., None].to(grad.dtype)
        grad_x = grad_z = None
        if ctx.needs_input_grad[1]:
            grad_x = torch.zeros_like(x).index_add_(0, index.flatten(),
                                                    grad.reshape(-1, x.size(1)))
        if ctx.needs_input_grad[0]:
            # Every weight relative to a draw's own maximum (draw k's largest remaining item
            # is i_k) or to the last valid draw a_ref, whose value bounds the never-drawn
            # items: all weights lie in [0, 1] and every softmax denominator in [1, P].
            dtype, valid = x.dtype, valid.to(torch.bool)
            a = z.gather(1, index).double()  # (B, K): z_{i_k}, decreasing in k
            a_ref = torch.where(valid, a, torch.inf).amin(1, keepdim=True)
            a_ref = torch.where(torch.isfinite(a_ref), a_ref, 0.0)
            a = torch.where(valid, a, a_ref)
            # (B, P) weights in z's dtype: an entry that underflows is below 1e-38 of its
            # draw's denominator (>= 1)
            w_rest = (z - a_ref.to(z.dtype)).exp().scatter(1, index, 0.0)  # never drawn: <= 1
            kk = index.size(1)
            pair = (torch.ones(kk, kk, dtype=torch.bool, device=z.device).triu()[None]
                    & valid[:, :, None] & valid[:, None, :])  # [b, k, j]: j >= k, both valid
            t = (a[:, None, :] - a[:, :, None]).masked_fill(~pair, -torch.inf).exp()
            rho = (a_ref - a).exp() * valid  # (B, K)
            den = rho * w_rest.sum(1, keepdim=True).double() + t.sum(-1)  # D_k / e^{a_k} >= 1
            den = torch.where(valid, den, 1.0)
            rho, t = rho / den, t / den[..., None]  # s_k: w_rest * rho_k, and t_kj at i_j
            m = (grad @ rows.transpose(1, 2)).double()  # M_kj = G_k . X_{i_j}
            rest = (w_rest.to(dtype) @ x)[:, :, None]  # (B, d, 1)
            gamma = rho * (grad @ rest).squeeze(-1).double() + (t * m).sum(-1)  # G_k . s_k X
            c = (rho.to(dtype)[:, None, :] @ grad).squeeze(1)  # (B, d): sum_k rho_k G_k
            grad_z = w_rest * ((c @ x.t()).to(z.dtype)
                               - (rho * gamma).sum(1, keepdim=True).to(z.dtype))
            drawn = (t * (m - gamma[:, :, None])).sum(1)  # (B, K): sum over draws k <= j
            grad_z = grad_z.scatter(1, index, drawn.to(z.dtype))
        return grad_z, grad_x, None, None


def _score_rows(decoder: KGEDecoder, fixed: Tensor, r: Tensor, rows: Tensor,
                head_batch: bool) -> Tensor:
    """Scores :obj:`(B, K)` of the drawn rows :obj:`(B, K, F)` as heads (``head_batch``) or
    tails of the queries with fixed side rows :obj:`(B, F)` and relations ``r``.

    A decoder with its own form of a training step's corruptions (an override of
    :meth:`~mmgnn.nn.kge.base.KGEDecoder.score_corruptions`, e.g. RotatE's or TransE-L1's
    fused kernels, equal to :meth:`score_hrt` within float rounding) scores them by ids into
    a table of the :math:`B` fixed rows and the :math:`B K` drawn ones, whose gradient reaches
    the drawn rows as :meth:`score_hrt`'s would; any other decoder scores the rows directly."""
    if type(decoder).score_corruptions is KGEDecoder.score_corruptions:
        fixed, rel = fixed[:, None], r[:, None]
        return (decoder.score_hrt(rows, rel, fixed) if head_batch
                else decoder.score_hrt(fixed, rel, rows))
    b, k = rows.shape[:2]
    table = torch.cat([fixed, rows.reshape(b * k, -1)])
    ids = torch.arange(b, device=rows.device)
    drawn = b + torch.arange(b * k, device=rows.device).view(b, k)
    corrupt_head = torch.full((b, k), head_batch, dtype=torch.bool, device=rows.device)
    return decoder.score_corruptions(table, ids, r, ids, corrupt_head, drawn)


def fit_tokens(name: str, x: Tensor, mask: Tensor, lengths: Tensor | None,
               tokens: dict[str, int]) -> tuple[Tensor, Tensor, Tensor]:
    """MMRNS's ``prepare`` of view ``name``: float32 token rows :obj:`(N, T, d)` with
    :math:`T` = ``tokens[name]`` (a longer sequence truncated, a shorter one and a vector
    :obj:`(N, d)`, one token, zero-padded), valid lengths (0 where absent) and presence (an
    entity with no valid token lacks the view)."""
    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 2:
        x, length = x[:, None], mask.long()
    else:
        length = torch.where(mask, x.size(1), 0) if lengths is None else lengths
        x = x[:, :tokens[name]]
        length = length.clamp(max=tokens[name])
    if x.size(1) < tokens[name]:
        x = F.pad(x, (0, 0, 0, tokens[name] - x.size(1)))
    return x, mask & (length > 0), torch.where(mask, length, 0)


def _views(modalities: ModalityStore | None, names: dict[str, str | None]
           ) -> dict[str, tuple[Tensor, Tensor, Tensor | None]]:
    """``(x, mask, lengths)`` of every view (role) MMRNS reads: the modality named for it,
    the role's own name where held by default; a named modality that is not held is an
    error."""
    held = modalities.names if modalities is not None else []
    out = {}
    for role, name in names.items():
        if name in (None, "none", ""):
            continue
        if name not in held:
            if name == role:
                continue
            raise ValueError(f"MMRNS {role} features {name!r} not found; held: {held} (build "
                             f"them with --modalities)")
        out[role] = modalities.get(name)
    return out


class MMRNSSampler(NegativeSampler, torch.nn.Module):
    r"""Relation-enhanced multimodal negative sampling (MMRNS, `Xu et al., ACM MM 2022
    <https://arxiv.org/abs/2208.10658>`_, Sec. 3; spec ``MMRNS.md``, sections 2-4): a learned
    sampler that draws hard negatives semantically close to the gold answer, for any decoder.

    At each training step, for the batch's queries :math:`(h, r, ?)` (tail batch) or
    :math:`(?, r, t)` (head batch; the side alternates between steps as the released
    ``BidirectionalOneShotIterator``):

    1. **Pre-sample** :math:`P` candidate entities uniformly without replacement, shared by
       the batch and fresh each step. Cost: the views of the :math:`U` distinct relations of
       the batch against the :math:`P` candidates, :math:`O(U P (H F + L_q L_k a))` time
       (the structural view's :math:`W_3` product dominates: one relation at a time,
       :meth:`KCA.structure_dots`; the modality views in slices of the relations of
       :data:`GRID_ELEMENTS` values; KCA's grid form never builds
       :math:`U \times P \times L \times a`), plus :math:`O(BP)` for the similarities and the
       draw (never :math:`B \times P \times a` or :math:`B \times K \times P`): time grows
       linearly in :math:`P`.
    2. **Views** of every candidate and of the gold answer :math:`g` from :class:`KCA`
       (structure, and text / image when features are given), with the query relation; the
       grid form runs once per *distinct* relation of the batch (the views depend on the
       query only through :math:`r`).
    3. **Similarity** per view :math:`v`: cosine
       :math:`\mathrm{sim}_v(c) = \langle v_c, v_g\rangle / \mathrm{sg}(\|v_c\| \|v_g\|)`
       (denominator detached as released; ``detach_norm=False`` for the plain cosine).
    4. **Distribution** :math:`\pi(c) = \sum_v \mathrm{softmax}_c(\mathrm{sim}_v / \tau)`,
       :math:`\tau = \tau_0 / (1 + \ln(s + 1))` (:func:`exploration_temperature`); candidates
       lacking a modality get no mass from that view, a gold lacking it drops the view.
    5. **Draw** :math:`K` negatives without replacement from :math:`\pi` with known **train**
       answers of the query masked out (:func:`gumbel_top_k`, straight-through): negative
       :math:`k` is :math:`y_k^\top X_{pre}`, whose gradient reaches the entity
       representations and, through :math:`\pi`, KCA.
    6. **Contrastive semantic loss** per view, with :math:`w_c = 1/P` times the detached
       self-adversarial weight :math:`\mathrm{softmax}_k(\alpha s'_k)` of each drawn negative,
       :math:`A_b` the known answers of query :math:`b` in the pre-sample:

       .. math::
           \mathcal{L}_v = \frac{1}{|Q|}\sum_{b \in Q} -\log
           \frac{\sum_{c \in A_b} w_{bc} e^{\mathrm{sim}_v(b, c)}}
                {\sum_{c \notin A_b} w_{bc} e^{\mathrm{sim}_v(b, c)}}

       over the queries :math:`Q` with at least one known answer in the pre-sample
       (``contrastive="query"``, the default). ``contrastive="batch"`` is the released
       code's form: both sums over the whole batch, one ratio (log(0) when no known answer
       was pre-sampled; the step then skips the term). The sampler's loss term is
       ``contrastive_weight`` :math:`\times \operatorname{mean}_v \mathcal{L}_v` (released:
       :math:`(\mathcal{L}_t + \mathcal{L}_{img} + \mathcal{L}_{txt}) / (3 \cdot 100)`).

    The KGE loss is the trainer's (the released code uses the self-adversarial loss:
    ``loss="self_adversarial"``). The sampler's parameters (KCA) are trained by the same
    optimiser in their own parameter group (learning rate ``lr``, released ``kca_lr``) and
    saved in the trainer's checkpoints with the step counter.

    Args:
        train (Tensor): :obj:`(n, 3)` training triples (the known answers to mask).
        num_entities (int): :math:`N`.
        num_relations (int): Relations of the dataset.
        num_negatives (int): :math:`K`.
        entity_channels (int): Width of the model's entity representations.
        relation_channels (int, optional): Width of the decoder's relation embeddings
            (``decoder.rel_emb``); :obj:`None`: the sampler learns its own relation table of
            ``attention_channels``.
        modalities (ModalityStore, optional): The entity features (e.g.
            :meth:`ModalityStore.from_kg`): token features :obj:`(N, L, d)` with lengths
            (truncated to ``text_tokens`` / ``image_tokens``) or vectors :obj:`(N, d)` (one
            token). (default: none, the structure view only)
        text (str, optional): The modality of ``modalities`` read as MMRNS's text view;
            :obj:`None` or ``"none"`` for none. (default: ``"text"`` if held)
        image (str, optional): The modality read as the image view. (default: ``"image"``
            if held)
        pre_sample (int): :math:`P`. (default: :obj:`1500`)
        text_tokens (int): (default: :obj:`4`)
        image_tokens (int): (default: :obj:`24`)
        attention_channels (int): (default: :obj:`50`)
        hidden_channels (int): (default: :obj:`100`)
        initial_temperature (float): :math:`\tau_0`. (default: :obj:`10.0`)
        contrastive (str): ``query`` or ``batch``. (default: ``query``)
        contrastive_weight (float): (default: :obj:`0.01`, released ``1 / loss_rate``)
        adversarial_temperature (float): :math:`\alpha` of the contrastive weights.
            (default: :obj:`1.0`)
        side (str): ``alternate`` (released: tail batches at even steps, starting with step
            0, head batches at odd ones), ``tail`` or ``head``. (default: ``alternate``)
        detach_norm (bool): Detach the cosine denominators. (default: :obj:`True`)
        released_positive_norm (bool): See :class:`KCA`. (default: :obj:`False`)
        lr (float, optional): Learning rate of the sampler's parameters (default: the
            trainer's).
        pool_uniform (bool): The **pool-uniform control**: draw the :math:`K` negatives
            uniformly without replacement from the same shared pre-sample (known train
            answers masked, same side alternation and straight-through rows), without KCA
            and without the contrastive term; everything else as MMRNS. It tells what the
            learned distribution adds over the shared pool itself. (default: :obj:`False`)
    """

    learned = True

    def __init__(self, train: Tensor, num_entities: int, num_relations: int,
                 num_negatives: int, entity_channels: int, relation_channels: int | None = None,
                 modalities: ModalityStore | None = None, text: str | None = "text",
                 image: str | None = "image", pre_sample: int = 1500,
                 text_tokens: int = 4, image_tokens: int = 24, attention_channels: int = 50,
                 hidden_channels: int = 100, initial_temperature: float = 10.0,
                 contrastive: str = "query", contrastive_weight: float = 0.01,
                 adversarial_temperature: float = 1.0, side: str = "alternate",
                 detach_norm: bool = True, released_positive_norm: bool = False,
                 lr: float | None = None, pool_uniform: bool = False) -> None:
        torch.nn.Module.__init__(self)
        NegativeSampler.__init__(self, num_entities, num_negatives)
        if contrastive not in CONTRASTIVE_FORMS:
            raise ValueError(f"contrastive must be one of {CONTRASTIVE_FORMS}, got "
                             f"{contrastive!r}")
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        self.pre_sample = min(int(pre_sample), num_entities)
        if num_negatives >= self.pre_sample:
            raise ValueError(f"MMRNS draws K={num_negatives} negatives from a pre-sample of "
                             f"{self.pre_sample} entities; use pre_sample > K")
        self.initial_temperature = float(initial_temperature)
        self.contrastive, self.contrastive_weight = contrastive, float(contrastive_weight)
        self.adversarial_temperature = float(adversarial_temperature)
        self.side, self.detach_norm, self.lr = side, detach_norm, lr
        self.pool_uniform = bool(pool_uniform)
        self.known = FilterIndex(train, num_entities, num_relations)
        self.empty_slots = 0  # draws left empty (fewer allowed candidates than K), reported
        if relation_channels is None:
            self.relation = torch.nn.Embedding(num_relations, attention_channels)
            torch.nn.init.xavier_normal_(self.relation.weight)
            relation_channels = attention_channels
        else:
            self.relation = None
        tokens = {"text": text_tokens, "image": image_tokens}
        views = _views(modalities, {"text": text, "image": image})
        # The views under their role names, fitted to the token counts of KCA's grid.
        self.modalities = ModalityStore(prepare=partial(fit_tokens, tokens=tokens),
                                        num_entities=num_entities)
        for role, (x, mask, lengths) in views.items():
            self.modalities.set(role, x, mask, lengths)
        self.modality_names = self.modalities.names
        dims = {m: self.modalities.width(m) for m in self.modality_names}
        self.kca = KCA(entity_channels, relation_channels, dims.get("text"), dims.get("image"),
                       tokens["text"], tokens["image"], attention_channels, hidden_channels,
                       released_positive_norm)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # ----------------------------------------------------------------- helpers
    def temperature(self) -> float:
        """The exploration temperature of the current step."""
        return exploration_temperature(int(self.step), self.initial_temperature)

    def _relation_table(self, model: RowScoredModel) -> Tensor:
        if self.relation is not None:
            return self.relation.weight
        return model.decoder.rel_emb.weight

    def _known_in_presample(self, anchor: Tensor, r: Tensor, pre: Tensor,
                            head_batch: bool) -> Tensor:
        """:obj:`(B, P)`: pre-sampled candidate ``p`` is a known train answer of query ``b``."""
        rows, answers = (self.known.true_heads(r, anchor) if head_batch
                         else self.known.true_tails(anchor, r))
        position = torch.full((self.num_entities,), -1, dtype=torch.long, device=pre.device)
        position[pre] = torch.arange(len(pre), device=pre.device)
        col = position[answers.to(pre.device)]
        hit = col >= 0
        known = torch.zeros(len(anchor), len(pre), dtype=torch.bool, device=pre.device)
        known[rows.to(pre.device)[hit], col[hit]] = True
        return known

    def _tokens(self, idx: Tensor) -> dict[str, Tensor]:
        out = {}
        for m in self.modality_names:
            x, _, lengths = self.modalities.get(m)
            out[m] = x[idx]
            out[f"{m}_lengths"] = lengths[idx]
        return out

    def _similarities(self, model: RowScoredModel, x: Tensor, r: Tensor, gold: Tensor,
                      pre: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Cosine similarity :obj:`(B, P)` of every candidate to the gold answer per view, and
        which (query, candidate) pairs the view covers.

        The candidates' relation-free half of KCA (:meth:`KCA.prepare`) is computed once.
        The structural view goes through :meth:`KCA.structure_dots` (one relation at a time,
        only its dots with the gold views and its norms leave it); the modality views' grid
        runs over slices of the batch's distinct relations of about :data:`GRID_ELEMENTS`
        values per :obj:`(U_{slice}, P, *)` tensor (the same numbers as one pass over all
        relations: every value depends on one relation), without tensors of hundreds of MB
        whose fresh pages cost more than the arithmetic on one core."""
        table = self._relation_table(model)
        relations, inverse = torch.unique(r, return_inverse=True)
        rel = table[relations]
        gold_views = self.kca(table[r], x[gold], **self._tokens(gold), pairwise=True)
        side = self.kca.prepare(x[pre], **self._tokens(pre))
        # queries grouped by relation: every group's dots are one (P, a) x (a, n_u) product,
        # never a (B, P, a) gather of the grid
        order = torch.argsort(inverse, stable=True)
        unsort = torch.argsort(order)
        counts = torch.bincount(inverse, minlength=len(relations)).tolist()
        grouped = {v: g[order].split(counts) for v, g in gold_views.items()
                   if v != "structure"}
        # the structural view, one relation at a time, reduced to its dots and norms
        dot, norm = self.kca.structure_dots(rel, side, gold_views["structure"][order], counts)
        dots: dict[str, list[Tensor]] = {"structure": [dot]}
        norms: dict[str, list[Tensor]] = {"structure": [norm]}
        width = max(self.kca.attention_channels, self.kca.affinity_size)
        size = max(1, GRID_ELEMENTS // (len(pre) * width))
        for v in self.kca.modalities:
            dots[v], norms[v] = [], []
        for start in range(0, len(relations) if self.kca.modalities else 0, size):
            grid = self.kca.grid(rel[start:start + size], side, structure=False)
            for v, cand in grid.items():
                dots[v] += [gu @ c.t() for c, gu in  # (n_u, P)
                            zip(cand, grouped[v][start:start + size], strict=True)]
                norms[v].append(cand.norm(dim=-1))  # (U_slice, P)
        sims, covered = {}, {}
        for v, g in gold_views.items():
            dot = (dots[v][0] if len(dots[v]) == 1 else torch.cat(dots[v]))[unsort]  # (B, P)
            norm = torch.cat(norms[v], 0)[inverse] * g.norm(dim=-1)[:, None]
            sims[v] = dot / ((norm.detach() if self.detach_norm else norm) + 1e-10)
            if v == "structure":
                covered[v] = torch.ones_like(dot, dtype=torch.bool)
            else:
                mask = self.modalities.get(v)[1]
                covered[v] = mask[gold][:, None] & mask[pre][None, :]
        return sims, covered

    # ------------------------------------------------------------- interface
    def score_batch(self, model: RowScoredModel, x: Tensor, positives: Tensor,
                    generator: torch.Generator | None = None
                    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Positive scores :obj:`(B,)`, scores of the :math:`K` drawn negatives
        :obj:`(B, K)` (empty slots :data:`EMPTY_SLOT_SCORE`) and the contrastive loss term;
        advances the step counter when training."""
        pos_scores, neg_scores, loss, _ = self.draw(model, x, positives, generator)
        return pos_scores, neg_scores, loss

    def draw(self, model: RowScoredModel, x: Tensor, positives: Tensor,
             generator: torch.Generator | None = None
             ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """:meth:`score_batch` plus the drawn negatives as triples :obj:`(B, K, 3)` (entity
        ``-1`` in empty slots)."""
        if not getattr(model, "fused_corruptions", False):
            raise TypeError(f"MMRNS scores drawn negatives as representation rows with the "
                            f"model's decoder; {type(model).__name__} scores triples its own "
                            f"way (fused_corruptions=False), so use another sampler with it")
        device = x.device
        h, r, t = positives.unbind(1)
        step = int(self.step)
        # the release's BidirectionalOneShotIterator serves a tail batch first
        head_batch = self.side == "head" or (self.side == "alternate" and step % 2 == 1)
        gold, anchor = (h, t) if head_batch else (t, h)
        pre = torch.randperm(self.num_entities, generator=generator)[:self.pre_sample]
        pre = pre.to(device)
        known = self._known_in_presample(anchor, r, pre, head_batch)
        if self.pool_uniform:  # the control: uniform over the shared pool's non-answers
            sims = covered = None
            logits = torch.zeros(known.shape, device=device).masked_fill(known, float("-inf"))
        else:
            sims, covered = self._similarities(model, x, r, gold, pre)
            dist = self.distribution(sims, covered, step)
            logits = torch.log(dist).masked_fill(known, float("-inf"))
        x_pre = x[pre]
        index, neg, valid = gumbel_top_k_rows(logits, x_pre, self.num_negatives, generator)
        if not bool(valid.all()):
            if not self.empty_slots:  # once per sampler; the running count is empty_slots
                warnings.warn(f"MMRNS: {int((~valid).sum())} of {valid.numel()} negatives "
                              f"left empty (queries with fewer than K={self.num_negatives} "
                              f"non-answers among the {self.pre_sample} pre-sampled "
                              f"entities); they get zero loss; the count goes on in "
                              f"sampler.empty_slots", stacklevel=3)
            self.empty_slots += int((~valid).sum())
        neg_scores = _score_rows(model.decoder, x[anchor], r, neg, head_batch)
        neg_scores = torch.where(valid, neg_scores,
                                 torch.full((), EMPTY_SLOT_SCORE, device=device))
        pos_scores = model.score_triples(x, h, r, t)
        loss = (None if sims is None
                else self._contrastive(sims, covered, known, index, valid, neg_scores))
        if self.training:
            self.step += 1
        entities = torch.where(valid, pre[index], torch.full((), -1, device=device))
        negatives = positives[:, None, :].repeat(1, self.num_negatives, 1)
        negatives[..., 0 if head_batch else 2] = entities
        return pos_scores, neg_scores, loss, negatives

    def distribution(self, sims: dict[str, Tensor], covered: dict[str, Tensor], step: int
                     ) -> Tensor:
        r"""The unnormalised draw distribution :obj:`(B, P)` of step ``step``:
        :math:`\pi = \sum_v \mathrm{softmax}_c(\mathrm{sim}_v / \tau)` over the views, a view
        giving no mass to candidates it does not cover (all of its mass to those it does)
        and none at all to a query whose gold answer it does not cover (spec ``MMRNS.md``,
        section 2, last line; released ``KCA.forward``'s return value)."""
        tau = exploration_temperature(step, self.initial_temperature)
        dist = torch.zeros_like(sims["structure"])
        for v, s in sims.items():
            if bool(covered[v].all()):  # e.g. the structural view: no (B, P) masking passes
                dist = dist + torch.softmax(s / tau, dim=1)
                continue
            # finite fill: a row without any covered candidate stays NaN-free (then zeroed)
            logits = (s / tau).masked_fill(~covered[v], -1e9)
            p = torch.softmax(logits, dim=1)
            dist = dist + torch.where(covered[v].any(1, keepdim=True), p, torch.zeros_like(p))
        return dist

    def _contrastive(self, sims: dict[str, Tensor], covered: dict[str, Tensor], known: Tensor,
                     index: Tensor, valid: Tensor, neg_scores: Tensor) -> Tensor | None:
        if not self.contrastive_weight:
            return None
        b, p = known.shape
        adv = torch.softmax(self.adversarial_temperature * neg_scores.detach(), dim=1)
        log_w = torch.full((b, p), -math.log(p), device=known.device)
        log_w = log_w.scatter_add(1, index, torch.where(valid, adv.clamp_min(1e-30).log(),
                                                        torch.zeros_like(adv)))
        terms = []
        for v, s in sims.items():
            z = s + log_w
            pos = known & covered[v]
            neg = ~known & covered[v]
            if self.contrastive == "batch":
                if not (pos.any() and neg.any()):
                    continue
                terms.append(torch.logsumexp(z[neg], 0) - torch.logsumexp(z[pos], 0))
                continue
            rows = pos.any(1) & neg.any(1)
            if not rows.any():
                continue
            top = torch.logsumexp(z.masked_fill(~pos, float("-inf"))[rows], 1)
            bottom = torch.logsumexp(z.masked_fill(~neg, float("-inf"))[rows], 1)
            terms.append((bottom - top).mean())
        if not terms:
            return None
        return self.contrastive_weight * torch.stack(terms).mean()

    def sample(self, positives: Tensor, generator: torch.Generator | None = None) -> Tensor:
        raise TypeError("MMRNS draws negatives from the model's current representations: use "
                        "score_batch(model, x, positives) (or draw(...) for the triples)")

    def __repr__(self) -> str:
        mods = ", ".join(self.modality_names) or "structure only"
        return (f"MMRNSSampler(num_entities={self.num_entities}, "
                f"num_negatives={self.num_negatives}, pre_sample={self.pre_sample}, "
                + ("pool_uniform=True)" if self.pool_uniform
                   else f"views=[{mods}], contrastive={self.contrastive!r})"))


def mmrns_sampler(kg: MultiModalKG, num_negatives: int, negative_filter: str = "train", *,
                  model: RowScoredModel, adversarial_temperature: float = 1.0,
                  text: str | None = "text", image: str | None = "image",
                  **sampler_args: Any) -> MMRNSSampler:
    """The :class:`MMRNSSampler` of a run (the sampler registry's ``mmrns``): sized for
    ``kg`` and ``model`` (its decoder's entity width and relation table), reading ``kg``'s
    modalities ``text`` / ``image`` (the names of the features to read as those views;
    default: ``text`` and ``image`` where ``kg`` has them, ``"none"`` for neither), with
    ``sampler_args`` the constructor's other arguments.

    MMRNS masks the known **training** answers of each query whatever ``negative_filter``
    says (it draws from the model's representations, never redraws); any other filter is
    reported with a warning."""
    if negative_filter != "train":
        warnings.warn(f"MMRNS masks the training triples' answers only; negative_filter="
                      f"{negative_filter!r} does not apply to it", stacklevel=2)
    wanted = [n for n in (text, image) if n not in (None, "none", "") and n in kg.modalities]
    rel = getattr(model.decoder, "rel_emb", None)
    return MMRNSSampler(kg.train, kg.num_entities, kg.num_relations, num_negatives,
                        model.decoder.entity_channels,
                        rel.embedding_dim if isinstance(rel, torch.nn.Embedding) else None,
                        ModalityStore.from_kg(kg, wanted), text=text, image=image,
                        **{"adversarial_temperature": adversarial_temperature,
                           **sampler_args})
