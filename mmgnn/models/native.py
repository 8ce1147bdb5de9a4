"""NativE: multi-modal knowledge graph completion in the wild (Zhang et al., SIGIR 2024)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.data.kg import inverse_relation
from mmgnn.modalities.store import ModalityStore, pool_vectors
from mmgnn.models.base import LinkPredictor, one_sided_corruptions
from mmgnn.nn.fusion.comat import PENALTIES, ModalityGenerator, gradient_penalty
from mmgnn.nn.fusion.redaf import ReDAF
from mmgnn.nn.kge.base import KGEDecoder, gather_pair
from mmgnn.nn.kge.candidates import candidate_modulus
from mmgnn.nn.kge.rotate import RotatE
from mmgnn.sampling.batches import NegativeBatch, QueryBatch
from mmgnn.utils.compile import check_kernel

FUSIONS = ("redaf", "mean")
# "full" / "head": WGAN-GP on the modality embeddings (gradient of all / the head's inputs);
# "released": on the fused (h, r, t) triple, the head's gradient only (released code).
MODEL_PENALTIES = (*PENALTIES, "released")
STRUCTURE = "structure"


class NativE(LinkPredictor):
    r"""The NativE model of `"NativE: Multi-modal Knowledge Graph Completion in the Wild"
    <https://arxiv.org/abs/2406.17605>`_ (Zhang et al., SIGIR 2024; spec ``NativE.md``) for
    any set of modalities of :mod:`mmgnn.modalities`, each possibly missing for some entities.

    **Representations** (section 1). Modality :math:`m = 1` is the structure, a free table
    :math:`\mathbf{E}_s` (:math:`\mathcal{U}(\pm(\gamma + \epsilon)/F)` for RotatE-like
    decoders, as the released code); every other modality :math:`m` has fixed features
    :math:`x_{e,m}` (``trainable_features``: a trainable table initialised from them, as
    the released DB15K model does for text, ``trainable_features=["text"]``) projected by its
    own two-layer MLP,
    :math:`\mathbf{e}_m = \mathbf{W}^{(2)}_m \mathrm{ReLU}(\mathbf{W}^{(1)}_m x_{e,m} +
    \mathbf{b}^{(1)}_m) + \mathbf{b}^{(2)}_m`.

    **Fusion** (section 2): :class:`~mmgnn.nn.fusion.ReDAF` with the query relation,
    :math:`\mathbf{e}^{(r)} = \sum_m \alpha^{(r)}_{e,m} \mathbf{e}_m` over the modalities the
    entity has (``fusion="mean"``: their plain mean; ``relation_temperature=False``:
    :math:`T_r = 1`). Head and candidates use the same :math:`r`; 1-to-all scoring fuses the
    candidate table once per distinct relation of the batch, never a
    :obj:`(B, N, F)` tensor.

    **Score**: any :mod:`mmgnn.nn.kge` decoder on the fused embeddings,
    :math:`f(h, r, t) = \phi_r(\mathbf{h}^{(r)}, \mathbf{t}^{(r)})`; RotatE by default
    (:math:`\gamma - \sum_k |h_k e^{i\theta_{r,k}} - t_k|`).

    **Training** (sections 3-4), negative sampling, one step per batch of :math:`B` positives
    (:meth:`loss`, then the generator's loss from :meth:`extra_losses`):

    1. critic step (the run's optimiser over every model parameter but the generator):

       .. math::
           \mathcal{L}_D = \mathcal{L}_{\mathrm{KGC}}
           + \mu \sum_{j=1}^{3} \big(-\overline{f(h, r, t)} + \overline{f_j^{\mathrm{fake}}}\big)
           + \mu \beta\, \mathrm{GP}

       with :math:`\mathcal{L}_{\mathrm{KGC}}` the run's loss (NativE: self-adversarial,
       :math:`\alpha = 2`), :math:`f^{\mathrm{fake}}_{1,2,3}` the scores of
       :math:`(\tilde h, r, t)`, :math:`(h, r, \tilde t)`, :math:`(\tilde h, r, \tilde t)`,
       where :math:`\tilde e` fuses the real structure with the
       :class:`~mmgnn.nn.fusion.ModalityGenerator`'s fake modality embeddings (every modality
       present), and GP the :func:`~mmgnn.nn.fusion.gradient_penalty` of the critic
       :math:`D(\hat x_h, \hat x_t) = f(\mathrm{ReDAF}(\mathbf{e}_s(h), \hat x_h),
       r, \mathrm{ReDAF}(\mathbf{e}_s(t), \hat x_t))` on interpolates of the real and fake
       modality embeddings of head and tail (``penalty="full"``, the standard penalty, or
       ``"head"``: the head's inputs only; ``"released"``: the released penalty, below);
    2. generator step (its own Adam, ``generator_lr``; parameter group ``"generator"`` of
       :meth:`param_groups`, which the trainer steps on :meth:`extra_losses` right after the
       critic step and :meth:`after_step`): fresh fakes,
       :math:`\mathcal{L}_G = -\frac13 \sum_j \overline{f_j^{\mathrm{fake}}}` (the released
       :math:`\overline{\gamma - f}` up to a constant).

    The generator sees all real modality embeddings of the entity (absent ones as zeros).
    Differences from the released code (``tests/parity/test_native.py`` checks one whole
    critic + generator step against the released trainer with the released forms): its
    critic step lets the Wasserstein term's gradient flow through the generator into the real
    embeddings (``critic_through_generator=True``; by default the fakes are constants of the
    critic step, standard WGAN), and its penalty interpolates the fused triple
    :math:`(\mathbf{h}, \mathbf{r}, \mathbf{t})` from detached tensors and takes the head's
    gradient only (``penalty="released"``); for RotatE that gradient has norm
    :math:`\sqrt{d}` everywhere, so the released penalty is the constant
    :math:`\beta(\sqrt{d} - 1)^2` that trains nothing. By default the interpolates are the
    generated modality embeddings, so the penalty reaches the critic's parameters.

    **Cost.** CoMAT's generator (hidden width 512, on :math:`2B` rows, three passes a step)
    costs about as much as RotatE's whole step while its gradient is :math:`\approx 5
    \cdot 10^{-4}` of the KGC gradient (:math:`\mu = 10^{-4}`).
    ``adversarial_every=k`` runs the critic terms and the generator step on every
    :math:`k`-th step only, the critic terms weighted :math:`k \mu` (the same total weight
    per :math:`k` steps); ``k = 1`` is the released schedule. The training step computes
    ReDAF's logits once for all entities and scores the candidates against rotated queries
    (:meth:`_negative_scores`), with RotatE in one C kernel that reads each candidate's row of
    the encoded table once forward and once backward. RotatE's own training step runs the
    same kernel (commit 319ab70), so on DB15K (one thread, batch 1024,
    ``benchmarks/native_quality.py --speed``) a step with CoMAT on every 8th step costs
    4.2-4.3x RotatE's at dim 64 / 32 negatives and 2.8-3.2x at dim 250 / 128 (0.85x and
    0.27x of RotatE's PyTorch step before 319ab70). The floor of that ratio -- RotatE's step
    plus only the matrix products NativE adds (the text projection of the batch's entities,
    ReDAF's logits, CoMAT's products divided by ``adversarial_every``), everything else
    free -- is 2.7x at dim 64 and 2.1x at dim 250: the projection alone costs about as much
    as RotatE's whole step or more, so this model cannot reach 1.5x at these settings.

    Features are held by the model's :class:`~mmgnn.modalities.ModalityStore`
    (``self.modalities``, sequences mean-pooled), outside the ``state_dict``;
    :meth:`set_modality` replaces them (and the presence matrix), which
    :func:`mmgnn.eval.robustness.robustness_sweep` uses. The model owns no optimiser: the
    trainer builds one per group of :meth:`param_groups` and checkpoints them.

    Released DB15K recipe (spec ``NativE.md``, section 5): ``dim=250``, RotatE
    ``margin=12``, text, image and numeric features, 128 negatives, batch 1024, lr
    :math:`10^{-4}` for both optimisers, self-adversarial loss with :math:`\alpha = 2`;
    :attr:`train_defaults` holds the loss settings (the run's size is the user's).

    Args:
        num_entities (int): Number of entities :math:`N`.
        num_relations (int): Number of relations :math:`R`.
        modalities (ModalityStore, optional): The entity features, :obj:`(N, d_m)` or
            :obj:`(N, L, d_m)` with masks and lengths. (default: none, structure only)
        decoder (str or KGEDecoder): The scoring function, by name (built with ``dim`` and
            ``decoder_args``) or a decoder holding :math:`R` relations (:math:`2R` if
            ``reciprocal``). (default: ``rotate``)
        dim (int): Width of the decoder (complex dimensions for RotatE: entity rows are
            :math:`2 \cdot` ``dim`` wide). (default: :obj:`250`, the released scripts)
        reciprocal (bool): Answer head queries through inverse relations. (default: :obj:`False`)
        fusion (str): ``redaf`` or ``mean``. (default: ``redaf``)
        relation_temperature (bool): ReDAF's :math:`T_r`. (default: :obj:`True`)
        adversarial (bool): Train with CoMAT. (default: :obj:`True`)
        mu (float): :math:`\mu`. (default: :obj:`1e-4`, the DB15K / MKG-W scripts)
        gp_weight (float): :math:`\beta`. (default: :obj:`0.1`)
        penalty (str): ``full``, ``head`` or ``released``. (default: ``full``)
        critic_through_generator (bool): The critic step's fakes keep their graph, so its
            Wasserstein term also trains the real embeddings through the generator, as
            released. (default: :obj:`False`)
        adversarial_every (int): CoMAT on every ``adversarial_every``-th training step.
            (default: :obj:`1`, as released)
        generator_lr (float, optional): Adam learning rate of the generator. (default: the
            run's learning rate, as the released scripts set both alike)
        noise_channels (int): Generator noise width. (default: :obj:`64`)
        generator_hidden (int): Generator hidden width. (default: :obj:`512`)
        trainable_features (bool or list of str): Train the feature tables (all, or those
            named; the released DB15K model: ``["text"]``). (default: :obj:`False`)
        regularization (float): Weight of the released L2 term
            :math:`(\overline{\mathbf{E}_s[h]^2} + \overline{\mathbf{E}_s[t]^2}
            + \overline{\mathbf{r}^2}) / 3`, means over every row of the batch, positives
            and negatives, as released (1e-5 in the 2- and 4-modal scripts).
            (default: :obj:`0.0`)
        step_kernel (str): How the training step scores the candidates with a RotatE decoder
            and the complex distance (:func:`~mmgnn.nn.kge.candidates.candidate_modulus`):
            ``"auto"`` or ``"compiled"``, its C kernel on CPU (float32 / float64; equal
            within float rounding); ``"eager"``, PyTorch operations, which train
            bit-identically to mmgnn before the kernel (commit 2f16082). (default:
            ``"auto"``)
        **decoder_args: The decoder's own arguments when it is given by name (``margin``,
            ...).

    Shapes:
        - **encode:** :math:`\rightarrow (N, M F)`, the :math:`M` modality embeddings of
          every entity side by side (structure first).
        - **scores:** as :class:`~mmgnn.models.base.LinkPredictor`.
    """

    regimes: ClassVar[tuple[str, ...]] = ("negative",)
    needs_reciprocal: ClassVar[bool] = False
    needs_modalities: ClassVar[bool] = True
    default_modalities: ClassVar[tuple[str, ...]] = ("text",)
    fused_corruptions: ClassVar[bool] = False
    train_defaults: ClassVar[dict[str, Any]] = {
        "regime": "negative", "loss": "self_adversarial", "adversarial_temperature": 2.0,
        "margin": 0.0}

    def __init__(self, num_entities: int, num_relations: int,
                 modalities: ModalityStore | None = None, decoder: str | KGEDecoder = "rotate",
                 dim: int = 250, *, reciprocal: bool = False,
                 fusion: str = "redaf", relation_temperature: bool = True,
                 adversarial: bool = True, mu: float = 1e-4, gp_weight: float = 0.1,
                 penalty: str = "full", critic_through_generator: bool = False,
                 adversarial_every: int = 1, generator_lr: float | None = None,
                 noise_channels: int = 64, generator_hidden: int = 512,
                 trainable_features: bool | Sequence[str] = False,
                 regularization: float = 0.0, step_kernel: str = "auto",
                 **decoder_args: Any) -> None:
        by_name = isinstance(decoder, str)
        super().__init__(num_entities, num_relations, decoder, reciprocal,
                         hidden_channels=dim if by_name else None,
                         decoder_kwargs=decoder_args if by_name else None)
        decoder = self.decoder
        store = modalities if modalities is not None else ModalityStore(num_entities=num_entities)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if penalty not in MODEL_PENALTIES:
            raise ValueError(f"penalty must be one of {MODEL_PENALTIES}, got {penalty!r}")
        if int(adversarial_every) != adversarial_every or adversarial_every < 1:
            raise ValueError(f"adversarial_every must be a positive integer (1: CoMAT on every "
                             f"step, as released), got {adversarial_every!r}")
        if STRUCTURE in store:
            raise ValueError(f"'{STRUCTURE}' is NativE's own view name, not a modality name")
        if adversarial and not len(store):
            raise ValueError("NativE's adversarial training (CoMAT) generates modality "
                             "embeddings: give it modalities (--modalities text) or pass "
                             "adversarial=False for structure only")
        width = decoder.entity_channels
        self.channels = width
        self.modalities = store.with_prepare(pool_vectors)
        self.fusion_mode, self.relation_temperature = fusion, bool(relation_temperature)
        self.adversarial, self.penalty = bool(adversarial), penalty
        self.mu, self.gp_weight = float(mu), float(gp_weight)
        self.generator_lr = None if generator_lr is None else float(generator_lr)
        self.critic_through_generator = bool(critic_through_generator)
        self.adversarial_every = int(adversarial_every)
        self.regularization_weight = float(regularization)
        self.step_kernel = check_kernel(step_kernel)
        names = self.modality_names
        if isinstance(trainable_features, str):
            raise TypeError(f"trainable_features takes a bool or a list of modality names, got "
                            f"the string {trainable_features!r} (write [{trainable_features!r}])")
        trainable = (list(names) if trainable_features is True else
                     [] if trainable_features is False else list(trainable_features))
        unknown = [m for m in trainable if m not in names]
        if unknown:
            raise ValueError(f"trainable_features names {unknown}, which are not among the "
                             f"model's modalities {names}")
        self.trainable_features = [m for m in names if m in trainable]

        self.entity = torch.nn.Embedding(num_entities, width)
        self.projections = torch.nn.ModuleDict({
            m: torch.nn.Sequential(torch.nn.Linear(self.modalities.width(m), width),
                                   torch.nn.ReLU(), torch.nn.Linear(width, width))
            for m in names})
        # Trainable feature tables are parameters initialised from the features (a copy:
        # training must not write into the graph's features).
        self.feature_tables = torch.nn.ParameterDict(
            {m: torch.nn.Parameter(self.modalities.get(m)[0].to(self.entity.weight.dtype,
                                                                copy=True))
             for m in self.trainable_features})
        self.register_buffer("presence", torch.ones(num_entities, 1 + len(names),
                                                    dtype=torch.bool), persistent=False)
        for i, m in enumerate(names):
            self.presence[:, 1 + i] = self.modalities.get(m)[1]
        margin, eps = getattr(decoder, "margin", None), getattr(decoder, "epsilon", None)
        self._entity_range = (margin + eps) / width if margin is not None and eps is not None \
            else None
        self.fusion = ReDAF(width, decoder.num_relations, temperature=relation_temperature,
                            adaptive=fusion == "redaf",
                            init_range=self._entity_range or 14.0 / width)
        if self.adversarial:
            self.generator = ModalityGenerator(width, 1 + len(names), noise_channels,
                                               generator_hidden)
        else:
            self.register_module("generator", None)
        if self.adversarial_every > 1:  # the cycle's position, saved with the weights
            self.register_buffer("comat_step", torch.zeros((), dtype=torch.long))
        self._pending: Tensor | None = None  # positives awaiting their generator step
        self.last_generator_loss: float | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.decoder.reset_parameters()
        if self._entity_range is not None:
            torch.nn.init.uniform_(self.entity.weight, -self._entity_range, self._entity_range)
        else:
            self.decoder.reset_entity_parameters(self.entity.weight)
        for proj in self.projections.values():
            for layer in proj:
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        self.fusion.reset_parameters()
        if self.generator is not None:
            self.generator.reset_parameters()

    # -------------------------------------------------------------- modalities
    @property
    def modality_names(self) -> list[str]:
        """The modalities the model reads, in the order of its views after the structure."""
        return self.modalities.names

    def set_modality(self, name: str, x: Tensor, mask: Tensor | None = None,
                     lengths: Tensor | None = None) -> None:
        """Replaces the features of modality ``name`` (sequences pooled over ``lengths``)
        and its presence; with ``trainable_features`` the table is overwritten."""
        if name not in self.modalities:
            raise KeyError(f"modality {name!r} is not one of this model's {self.modality_names}")
        self.modalities.set(name, x, mask, lengths)
        x, mask, _ = self.modalities.get(name)
        if name in self.feature_tables:
            with torch.no_grad():
                self.feature_tables[name].copy_(x)
        self.presence[:, 1 + self.modality_names.index(name)] = mask

    def modality(self, name: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """The current ``(features, mask, None)`` of modality ``name`` (the trainable table
        with ``trainable_features``)."""
        x, _, _ = self.modalities.get(name)
        x = self.feature_tables[name] if name in self.feature_tables else x
        return x, self.presence[:, 1 + self.modality_names.index(name)], None

    @property
    def num_modalities(self) -> int:
        """:math:`M`, the structure included."""
        return 1 + len(self.modality_names)

    def views(self, index: Tensor | None = None) -> Tensor:
        """Modality embeddings :obj:`(*, M, F)` of the entities ``index`` (default: all)."""
        rows = self.entity.weight if index is None else self.entity(index)
        out = [rows]
        for m in self.modality_names:
            x = self.modality(m)[0]
            x = x if index is None else x[index]
            out.append(self.projections[m](x.to(rows.dtype)))  # float32 features
        return torch.stack(out, dim=-2)

    def encode(self) -> Tensor:
        return self.views().flatten(1)

    def _unflatten(self, rows: Tensor) -> Tensor:
        return rows.view(*rows.shape[:-1], self.num_modalities, self.channels)

    # ----------------------------------------------------------------- scoring
    def fuse(self, emb: Tensor, index: Tensor, r: Tensor) -> Tensor:
        """ReDAF of the embeddings :obj:`(*, M, F)` of entities ``index`` :obj:`(*)` for
        relations ``r`` (broadcast against ``index``)."""
        return self.fusion(emb, self.presence[index], r)

    def _fuse_rows(self, x: Tensor, logits: Tensor, index: Tensor, r: Tensor) -> Tensor:
        """ReDAF of entities ``index`` :obj:`(*)` for relations ``r`` from the encoded table
        ``x`` :obj:`(N, M F)` and its logits :obj:`(N, M)` (computed once per step for all
        entities, so no :math:`\\tanh` of :obj:`(*, M, F)` gathered rows)."""
        w = self.fusion.weights(F.embedding(index, logits), self.presence[index], r)
        return self.fusion.combine(self._unflatten(F.embedding(index, x)), w)

    def score_triples(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> Tensor:
        hh, tt = gather_pair(x, h, t)
        return self.decoder.score_hrt(self.fuse(self._unflatten(hh), h, r), r,
                                      self.fuse(self._unflatten(tt), t, r))

    def score_with_negatives(self, x: Tensor, positives: Tensor,
                             negatives: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`LinkPredictor.score_with_negatives`; for one-sided corruptions see
        :meth:`_negative_scores`."""
        out = self._negative_scores(x, self.fusion.logits(self._unflatten(x)), positives,
                                    negatives)
        return out[0], out[1]

    def _negative_scores(self, x: Tensor, logits: Tensor, positives: Tensor,
                         negatives: Tensor) -> tuple[Tensor, Tensor, Tensor | None,
                                                     Tensor | None]:
        r"""``(positive scores (B,), negative scores (B, K), fused heads, fused tails)``.

        For one-sided corruptions the kept sides are fused once per positive and only the
        candidates :obj:`(B, K)` per corruption. With a RotatE decoder the candidates are
        scored against rotated queries, :math:`f = \gamma - d(\mathbf{c}, \mathbf{q})` with
        :math:`\mathbf{q} = \mathbf{h} \circ \mathbf{r}` for a tail corruption and
        :math:`\mathbf{t} \circ \bar{\mathbf{r}}` for a head corruption (:math:`|c_k r_k - t_k|
        = |c_k - t_k \bar r_k|` as :math:`|r_k| = 1`; the L2 distance is rotation-invariant
        too): no rotated head and tail tables. With the complex distance, the candidates'
        fusion (ReDAF's weights times their rows of ``x``), the difference to the gathered
        query and the moduli are one :func:`~mmgnn.nn.kge.candidates.candidate_modulus` (a C
        kernel on CPU; ``step_kernel="eager"``: PyTorch operations), no :obj:`(B, K, M, F)`
        rows. Other batches: :meth:`score_triples` (fused sides :obj:`None`)."""
        corrupt_head = one_sided_corruptions(positives, negatives)
        if corrupt_head is None:
            both = torch.cat([positives[:, None, :], negatives], dim=1)
            scores = self.score_triples(x, both[..., 0], both[..., 1], both[..., 2])
            return scores[:, 0], scores[:, 1:], None, None
        h, r, t = positives.unbind(1)
        nh, _, nt = negatives.unbind(-1)
        fh, ft = self._fuse_rows(x, logits, h, r), self._fuse_rows(x, logits, t, r)
        cand = torch.where(corrupt_head, nh, nt)
        dec = self.decoder
        rotate = isinstance(dec, RotatE)
        if rotate and dec.distance != "l2":  # combined in candidate_modulus below
            w = self.fusion.weights(F.embedding(cand, logits), self.presence[cand], r[:, None])
        else:
            fc = self._fuse_rows(x, logits, cand, r[:, None])
        pos = dec.score_hrt(fh, r, ft)
        if rotate:
            d = dec.hidden_channels
            theta = dec.phase(r)
            cos, sin = theta.cos(), theta.sin()
            h_re, h_im, t_re, t_im = fh[:, :d], fh[:, d:], ft[:, :d], ft[:, d:]
            hr = torch.cat([h_re * cos - h_im * sin, h_re * sin + h_im * cos], dim=-1)
            tr = torch.cat([t_re * cos + t_im * sin, t_im * cos - t_re * sin], dim=-1)
            # row b's query: hr[b] (tail corrupted) or tr[b] (head corrupted), one gather
            which = torch.arange(len(h), device=h.device)[:, None] + len(h) * corrupt_head
            if dec.distance == "l2":
                diff = fc - F.embedding(which, torch.cat([hr, tr]))
                dist = torch.linalg.vector_norm(diff, dim=-1)
            else:
                dist = candidate_modulus(x, cand, w, torch.cat([hr, tr]), which,
                                         self.step_kernel)
            return pos, dec.margin - dist, fh, ft
        heads = torch.where(corrupt_head[..., None], fc, fh[:, None])
        tails = torch.where(corrupt_head[..., None], ft[:, None], fc)
        return pos, dec.score_hrt(heads, r[:, None], tails), fh, ft

    def _one_to_all(self, x: Tensor, e: Tensor, r: Tensor, tail: bool) -> Tensor:
        emb = self._unflatten(x)
        logits = self.fusion.logits(emb)  # relation-independent: once for all entities
        out = x.new_empty(len(e), self.num_entities)
        for rel in r.unique():
            sel = (r == rel).nonzero().view(-1)
            table = self.fusion.combine(emb, self.fusion.weights(logits, self.presence, rel))
            q = self.fusion.combine(emb[e[sel]], self.fusion.weights(
                logits[e[sel]], self.presence[e[sel]], r[sel]))
            out[sel] = (self.decoder.score_t(q, r[sel], table) if tail
                        else self.decoder.score_h(r[sel], q, table))
        return out

    def score_tails(self, x: Tensor, h: Tensor, r: Tensor) -> Tensor:
        return self._one_to_all(x, h, r, tail=True)

    def score_heads(self, x: Tensor, r: Tensor, t: Tensor) -> Tensor:
        if self.reciprocal:
            return self._one_to_all(x, t, inverse_relation(r, self.num_relations), tail=True)
        return self._one_to_all(x, t, r, tail=False)

    def regularization(self, x: Tensor, h: Tensor, r: Tensor, t: Tensor) -> list[Tensor]:
        return []

    # ---------------------------------------------------------------- training
    def loss(self, x: Tensor, batch: NegativeBatch | QueryBatch,
             loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
        r""":math:`\mathcal{L}_D` of the class docstring for a negative-sampling batch
        (``batch.positives`` :obj:`(B, 3)`, ``batch.negatives`` :obj:`(B, K, 3)`; in training
        mode with ``adversarial`` on the steps CoMAT runs (every ``adversarial_every``-th),
        else the KGC loss and the L2 term); remembers the positives for the generator loss
        of :meth:`extra_losses`. Other batches: the default loss."""
        if not isinstance(batch, NegativeBatch):
            return super().loss(x, batch, loss_fn)
        positives, negatives = batch.positives, batch.negatives
        logits = self.fusion.logits(self._unflatten(x))  # once per step, all entities
        pos, neg, fh, ft = self._negative_scores(x, logits, positives, negatives)
        loss = loss_fn(pos, neg)
        h, r, t = positives.unbind(1)
        if self.regularization_weight:  # over every row of the batch, as released
            both = torch.cat([positives[:, None, :], negatives], dim=1)
            rel = getattr(self.decoder, "rel_emb", None)
            terms = [self.entity(both[..., 0]).pow(2).mean(),
                     self.entity(both[..., 2]).pow(2).mean()]
            if rel is not None:
                terms.append(rel(both[..., 1]).pow(2).mean())
            loss = loss + self.regularization_weight * sum(terms) / 3
        if self.adversarial and self.training and self._comat_due():
            if fh is None:
                fh, ft = self._fuse_rows(x, logits, h, r), self._fuse_rows(x, logits, t, r)
            critic = self._critic_loss(x, logits, positives, pos, fh, ft)
            loss = loss + self.mu * self.adversarial_every * critic
            self._pending = positives.detach()
        return loss

    def _comat_due(self) -> bool:
        """Whether CoMAT runs on this training step (every ``adversarial_every``-th, counted
        in the ``comat_step`` buffer so that a resumed run keeps the cycle)."""
        if self.adversarial_every == 1:
            return True
        due = int(self.comat_step) % self.adversarial_every == 0
        self.comat_step += 1
        return due

    def _fake_fused(self, x: Tensor, logits: Tensor, index: Tensor, r: Tensor,
                    fake: Tensor) -> Tensor:
        r""":math:`\tilde{\mathbf{e}}`: ReDAF of the real structure of ``index`` and the fake
        modality embeddings ``fake`` :obj:`(B, M - 1, F)` (every modality present)."""
        emb = torch.cat([F.embedding(index, x[:, :self.channels])[:, None], fake], dim=1)
        scores = torch.cat([F.embedding(index, logits[:, :1]), self.fusion.logits(fake)], dim=1)
        return self.fusion.combine(emb, self.fusion.weights(scores, None, r))

    def _generate(self, x: Tensor, index: Tensor) -> Tensor:
        """The generator's fake modality embeddings :obj:`(B, M - 1, F)` for entities
        ``index`` from their real ones in ``x`` (absent modalities as zeros)."""
        emb = self._unflatten(F.embedding(index, x))
        return self.generator(emb * self.presence[index][..., None])

    def critic_loss(self, x: Tensor, positives: Tensor, pos_scores: Tensor) -> Tensor:
        r"""The adversarial part of :math:`\mathcal{L}_D` (divided by :math:`\mu`):
        :math:`\sum_j (-\overline{f} + \overline{f^{\mathrm{fake}}_j}) + \beta\,\mathrm{GP}`
        for positives ``(B, 3)`` with scores ``pos_scores``; fakes drawn without gradient
        unless ``critic_through_generator``."""
        logits = self.fusion.logits(self._unflatten(x))
        h, r, t = positives.unbind(1)
        fh, ft = self._fuse_rows(x, logits, h, r), self._fuse_rows(x, logits, t, r)
        return self._critic_loss(x, logits, positives, pos_scores, fh, ft)

    def _critic_loss(self, x: Tensor, logits: Tensor, positives: Tensor, pos_scores: Tensor,
                     fh: Tensor, ft: Tensor) -> Tensor:
        h, r, t = positives.unbind(1)
        # Both generator calls in one: the same noise draws as two (randn fills row-major).
        with torch.set_grad_enabled(self.critic_through_generator and torch.is_grad_enabled()):
            fake_h, fake_t = self._generate(x, torch.cat([h, t])).split(len(h))
        fjh = self._fake_fused(x, logits, h, r, fake_h)
        fjt = self._fake_fused(x, logits, t, r, fake_t)
        dec = self.decoder
        fakes = [dec.score_hrt(fjh, r, ft), dec.score_hrt(fh, r, fjt), dec.score_hrt(fjh, r, fjt)]
        wasserstein = sum(s.mean() - pos_scores.mean() for s in fakes)
        if not self.gp_weight:
            return wasserstein
        if self.penalty == "released":
            gp = gradient_penalty(lambda i: dec.score_hrt(i[0], r, i[1]), [fh, ft],
                                  [fjh, fjt], "head")
        else:
            present = [self.presence[e][:, 1:, None] for e in (h, t)]
            real_h = self._unflatten(F.embedding(h, x))[:, 1:] * present[0]
            real_t = self._unflatten(F.embedding(t, x))[:, 1:] * present[1]

            def critic(inputs: list[Tensor]) -> Tensor:
                return dec.score_hrt(self._fake_fused(x, logits, h, r, inputs[0]), r,
                                     self._fake_fused(x, logits, t, r, inputs[1]))

            gp = gradient_penalty(critic, [real_h, real_t], [fake_h, fake_t], self.penalty)
        return wasserstein + self.gp_weight * gp

    def generator_loss(self, positives: Tensor) -> Tensor:
        r""":math:`\mathcal{L}_G = -\frac13 \sum_j \overline{f^{\mathrm{fake}}_j}` on fresh
        fakes (the released :math:`\frac13 \sum_j \overline{\gamma - f^{\mathrm{fake}}_j}`
        less the constant :math:`\gamma`); the real embeddings are constants."""
        h, r, t = positives.unbind(1)
        ht = torch.cat([h, t])
        with torch.no_grad():
            emb = self.views(ht)
            jh, jt = self.fuse(emb, ht, r.repeat(2)).split(len(h))
        # Both generator calls in one: the same noise draws as two (randn fills row-major).
        fake_h, fake_t = self.generator(emb * self.presence[ht][..., None]).split(len(h))
        eh, et = emb.split(len(h))
        fjh = self.fusion(torch.cat([eh[:, :1], fake_h], dim=1), None, r)
        fjt = self.fusion(torch.cat([et[:, :1], fake_t], dim=1), None, r)
        dec = self.decoder
        fakes = [dec.score_hrt(fjh, r, jt), dec.score_hrt(jh, r, fjt), dec.score_hrt(fjh, r, fjt)]
        return -sum(s.mean() for s in fakes) / 3

    def param_groups(self) -> dict[str, dict[str, Any]]:
        """``"model"``: every trainable parameter but the generator's (the critic step's
        optimiser); ``"generator"`` (with ``adversarial``): the generator's, for its own
        Adam as released: learning rate ``generator_lr`` (absent: the run's), no weight
        decay, the single-tensor update (``fused=False``, so runs stay bit-identical to the
        released order of updates)."""
        gen = list(self.generator.parameters()) if self.generator is not None else []
        own = {id(p) for p in gen}
        groups = {"model": {"params": [p for p in self.parameters()
                                       if p.requires_grad and id(p) not in own]}}
        if gen:
            groups["generator"] = {"params": gen, "optimizer": "adam", "weight_decay": 0.0,
                                   "fused": False}
            if self.generator_lr is not None:
                groups["generator"]["lr"] = self.generator_lr
        return groups

    def extra_losses(self) -> dict[str, Tensor]:
        """``{"generator": L_G}`` on the positives of the critic step just taken (CoMAT's 1:1
        alternation; nothing when no critic step is pending, e.g. in evaluation mode). The
        trainer calls it after the main step and :meth:`after_step`, and steps group
        ``"generator"`` on it; only the generator's parameters should take its gradient
        (``loss.backward(inputs=params)``: the fused critic is part of its graph)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return {}
        with torch.enable_grad():
            loss = self.generator_loss(pending)
        self.last_generator_loss = float(loss.detach())
        return {"generator": loss}

    @torch.no_grad()
    def after_step(self) -> None:
        """The decoder's entity constraint (the generator steps after it, on
        :meth:`extra_losses`)."""
        self.decoder.constrain_entities_(self.entity.weight)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}={self.modalities.width(m)}" for m in self.modality_names)
        extra = "".join([f", generator={self.generator!r}, mu={self.mu}, "
                         f"penalty={self.penalty!r}" if self.adversarial
                         else ", adversarial=False",
                         f", trainable_features={self.trainable_features}"
                         if self.trainable_features else "",
                         ", reciprocal=True" if self.reciprocal else "",
                         f", step_kernel={self.step_kernel!r}"
                         if self.step_kernel != "auto" else ""])
        return (f"NativE({self.num_entities}, modalities=[{mods}], decoder={self.decoder!r}, "
                f"fusion={self.fusion!r}{extra})")
