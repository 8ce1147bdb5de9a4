"""Knowledge-guided cross-modal attention (KCA), the semantic encoder of MMRNS's sampler."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

# Logit of a padded token in the attention softmaxes: finite, so an entity without any valid
# token gets a uniform weight over its (zero) tokens, i.e. a zero output, instead of NaN.
_MASKED = -1e9


class KCA(torch.nn.Module):
    r"""Knowledge-guided cross-modal attention from `"Relation-enhanced Negative Sampling for
    Multimodal Knowledge Graph Completion" <https://arxiv.org/abs/2208.10658>`_ (Xu et al.,
    ACM MM 2022, Sec. 3.2; spec ``MMRNS.md``, section 2; released ``KCA_model.py``).

    For an entity with text tokens :math:`T = \mathrm{LeakyReLU}_{0.1}(W_T X^{txt})
    \in \mathbb{R}^{L_t \times a}`, image tokens :math:`I = \mathrm{LeakyReLU}_{0.1}(W_I
    X^{img}) \in \mathbb{R}^{L_i \times a}`, structural embedding :math:`e` and a query
    relation :math:`r`, with :math:`C = I T^\top \in \mathbb{R}^{L_i \times L_t}`:

    .. math::
        B_1 &= \mathrm{softmax}_{\text{image tokens}}(C^\top)\, I, \qquad
        B_2 = \big(\sigma(W_{g1} r) \odot C\big)^\top I
        &\in \mathbb{R}^{L_t \times a} \\
        B_3 &= \mathrm{softmax}_{\text{text tokens}}(C)\, T, \qquad
        B_4 = \big(\sigma(W_{g2} r) \odot C\big)\, T
        &\in \mathbb{R}^{L_i \times a} \\
        v^{img} &= W_{pi}\, \mathrm{vec}\big(\mathrm{LN}(B_2) + \mathrm{LN}(B_1)\big), \qquad
        v^{txt} = W_{pt}\, \mathrm{vec}\big(\mathrm{LN}(B_4) + \mathrm{LN}(B_3)\big) \\
        v^{s} &= e \odot \sigma\big(W_3\, \mathrm{LeakyReLU}_{0.1}(W_1 [e; r])\big)

    The relation gates :math:`\sigma(W_g r)` (reshaped to :math:`L_i \times L_t`) weight the
    raw cross-modal affinities without normalisation (branches 2 and 4), as in the released
    code; one LayerNorm is shared by all branches.

    **One modality** (text-only or image-only data): the cross-modal affinity becomes the
    modality's self-affinity :math:`C = M M^\top` and the single view is
    :math:`\mathrm{LN}(B_4) + \mathrm{LN}(B_3)` with :math:`T = I = M`, named after the
    modality. **No modality**: only the relation-gated structural view :math:`v^s`.
    Padded tokens (beyond ``lengths``) are zeroed and excluded from the softmaxes; an entity
    lacking a modality (length 0) gets a constant view, which the sampler masks out.

    Two call forms share the computation:

    - **grid** (``pairwise=False``): :math:`U` relations against :math:`P` candidate entities,
      every view :math:`(U, P, \cdot)`; the relation-free half (the entity projection of
      :math:`W_1`, branches 1 and 3, the keys of branches 2 and 4) is computed once per entity
      (:meth:`prepare`) and can serve several sets of relations (:meth:`grid`);
    - **pairwise**: query :math:`b` with its own entity, every view :math:`(B, \cdot)` (the
      gold answers of a batch, ``positive_KCA`` in the released code).

    Args:
        entity_channels (int): Width :math:`F` of the structural embeddings :math:`e`.
        relation_channels (int): Width :math:`d_r` of the relation embeddings :math:`r`.
        text_channels (int, optional): Width of the text token features (released: 384).
        image_channels (int, optional): Width of the image token features (released: 383).
        text_tokens (int): :math:`L_t` (released: 4 description sentences). (default: :obj:`4`)
        image_tokens (int): :math:`L_i` (released: 24 BEiT rows). (default: :obj:`24`)
        attention_channels (int): :math:`a`. (default: :obj:`50`)
        hidden_channels (int): Width of :math:`W_1`. (default: :obj:`100`)
        released_positive_norm (bool): Skip the LayerNorm of :math:`B_1` in the pairwise
            form, as the released ``positive_KCA`` does (an inconsistency with the grid form).
            (default: :obj:`False`)

    Shapes:
        - **input (grid):** relations :math:`(U, d_r)`, entities :math:`(P, F)`, text
          :math:`(P, L_t, d_t)` and image :math:`(P, L_i, d_i)` tokens with lengths
          :math:`(P,)`.
        - **output (grid):** ``{"structure": (U, P, F), "text": (U, P, a), "image": (U, P, a)}``
          (the modalities given).
        - **input / output (pairwise):** the same with :math:`U = P = B` and no grid axis:
          views :math:`(B, F)` and :math:`(B, a)`.
    """

    def __init__(self, entity_channels: int, relation_channels: int,
                 text_channels: int | None = None, image_channels: int | None = None,
                 text_tokens: int = 4, image_tokens: int = 24, attention_channels: int = 50,
                 hidden_channels: int = 100, released_positive_norm: bool = False) -> None:
        super().__init__()
        if min(entity_channels, relation_channels, attention_channels, hidden_channels,
               text_tokens, image_tokens) < 1:
            raise ValueError("KCA needs positive channel and token counts")
        self.entity_channels, self.relation_channels = entity_channels, relation_channels
        self.text_channels, self.image_channels = text_channels, image_channels
        self.text_tokens, self.image_tokens = text_tokens, image_tokens
        self.attention_channels, self.hidden_channels = attention_channels, hidden_channels
        self.released_positive_norm = released_positive_norm
        a = attention_channels
        self.modalities = [m for m, c in (("text", text_channels), ("image", image_channels))
                           if c is not None]
        self.token_proj = torch.nn.ModuleDict()
        for m, c in (("text", text_channels), ("image", image_channels)):
            if c is not None:
                self.token_proj[m] = torch.nn.Linear(c, a)
        both = len(self.modalities) == 2
        # Query side (rows of C) and key side (columns of C): image x text, or M x M.
        rows = image_tokens if both or self.modalities == ["image"] else text_tokens
        cols = text_tokens if both or self.modalities == ["text"] else image_tokens
        self._rows, self._cols = rows, cols
        self.view_proj = torch.nn.ModuleDict()
        self.gates = torch.nn.ModuleDict()
        if self.modalities:
            # The view attending over the key side: text (B3, B4), or the single modality.
            key = self.modalities[0]
            self.view_proj[key] = torch.nn.Linear(rows * a, a)
            self.gates[key] = torch.nn.Linear(relation_channels, rows * cols)
        if both:  # the image view (B1, B2): text tokens attend over image tokens
            self.view_proj["image"] = torch.nn.Linear(cols * a, a)
            self.gates["image"] = torch.nn.Linear(relation_channels, rows * cols)
        self.norm = torch.nn.LayerNorm(a) if self.modalities else None
        self.lin1 = torch.nn.Linear(entity_channels + relation_channels, hidden_channels)
        self.lin3 = torch.nn.Linear(hidden_channels, entity_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights, default biases, as the released ``init_network``."""
        for module in self.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
                torch.nn.init.xavier_normal_(module.weight)
        if self.norm is not None:
            self.norm.reset_parameters()

    @property
    def affinity_size(self) -> int:
        """Entries of one cross-modal affinity :math:`C` (:math:`L_i L_t`, or :math:`L^2` of
        the single modality; 0 without modalities): the grid form's coefficients per
        (relation, entity) pair."""
        return self._rows * self._cols if self.modalities else 0

    @property
    def views(self) -> list[str]:
        """Names of the views :meth:`forward` returns."""
        return ["structure", *self.modalities]

    def _tokens(self, name: str, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Projected tokens :obj:`(*, L, a)` (padding zeroed) and validity :obj:`(*, L)`."""
        limit = self.text_tokens if name == "text" else self.image_tokens
        if x.dim() == 2:  # one vector per entity: a single token
            x = x[:, None]
        if x.size(1) != limit:
            raise ValueError(f"KCA: {name} tokens must have shape (*, {limit}, "
                             f"{self.token_proj[name].in_features}), got {tuple(x.shape)}; "
                             f"pad or truncate to {name}_tokens={limit}")
        if lengths is None:
            lengths = torch.full(x.shape[:1], limit, device=x.device)
        valid = torch.arange(limit, device=x.device)[None] < lengths.to(x.device)[:, None]
        z = F.leaky_relu(self.token_proj[name](x), 0.1) * valid[..., None].to(x.dtype)
        return z, valid

    def _view(self, name: str, keys: Tensor, keys_valid: Tensor, queries: Tensor,
              gate: Tensor) -> Tensor:
        """One modality view, pairwise: softmax branch + relation-gated branch, normalised,
        flattened, projected. ``keys`` :obj:`(B, Lk, a)` are attended by each query token."""
        affinity = queries @ keys.transpose(-1, -2)  # [b, i, j]: query token i, key token j
        plain = self._plain(affinity, keys, keys_valid)
        gated = (gate * affinity) @ keys  # (B, Lq, a)
        second = plain if (self.released_positive_norm and name == "image") \
            else self.norm(plain)
        return self.view_proj[name]((self.norm(gated) + second).flatten(-2))

    @staticmethod
    def _plain(affinity: Tensor, keys: Tensor, keys_valid: Tensor) -> Tensor:
        """The relation-free branch (1 or 3): softmax over the valid key tokens."""
        soft = torch.softmax(affinity.masked_fill(~keys_valid[:, None, :], _MASKED), dim=-1)
        return soft @ keys  # (P, Lq, a)

    def _grid_side(self, name: str, keys: Tensor, keys_valid: Tensor, queries: Tensor
                   ) -> dict[str, Tensor]:
        r"""The entity side of one view's grid form (see :meth:`_grid_view`): the products
        :math:`C_{pij} C_{pik} S_{pjk}` :obj:`(P, L_q, L_k^2)` of the affinities and the Gram
        matrices of the centred keys, the affinity-weighted projected keys
        :obj:`(P, L_q L_k, a_{out})` and the relation-free part of the output
        :obj:`(P, a_{out})`."""
        affinity = queries @ keys.transpose(-1, -2)
        plain = self._plain(affinity, keys, keys_valid)
        p, lq, lk = affinity.shape
        a = keys.size(-1)
        proj = self.view_proj[name]
        centred = keys - keys.mean(-1, keepdim=True)  # (P, Lk, a)
        gram = centred @ centred.transpose(-1, -2)  # (P, Lk, Lk)
        blocks = proj.weight.view(-1, lq, a)  # (a_out, Lq, a): W_i = blocks[:, i]
        # [p, j, i, o] = W_i (gamma * centred_pj): one (P Lk, a) x (a, Lq a_out) product
        keys_out = ((centred * self.norm.weight).reshape(p * lk, a)
                    @ blocks.permute(2, 1, 0).reshape(a, -1)).view(p, lk, lq, -1)
        pair = affinity[..., :, None] * affinity[..., None, :] * gram[:, None]
        return {"pair": pair.reshape(p, lq, lk * lk),
                "keys_out": (affinity[..., None] * keys_out.transpose(1, 2)
                             ).reshape(p, lq * lk, -1),
                "rest": proj((self.norm(plain) + self.norm.bias).flatten(-2))}  # with b

    def _grid_view(self, side: dict[str, Tensor], gate: Tensor, transpose: bool) -> Tensor:
        r"""The grid form of one view without an :obj:`(U, P, L_q, a)` tensor.

        With :math:`\alpha = \sigma(W_g r_u) \odot C_p`, keys :math:`K_p` centred over
        channels :math:`\bar K_p` and :math:`S_p = \bar K_p \bar K_p^\top`, the gated branch's
        LayerNorm is :math:`\mathrm{LN}(\alpha_i K_p) = \gamma \odot \alpha_i \bar K_p /
        \sigma_i + \beta` with :math:`\sigma_i^2 = \alpha_i S_p \alpha_i^\top / a + \epsilon`,
        so the projected view is
        :math:`\sum_{i,j} (\alpha_{ij} / \sigma_i)\, W_i (\gamma \odot \bar K_{pj})
        + W \mathrm{vec}(\mathrm{LN}(B_{plain}) + \beta) + b` (:math:`W_i`: the block of
        the projection that reads token :math:`i`): a contraction of the coefficients
        :math:`g_{uij} / \sigma_{pui}` :obj:`(P, U, L_q L_k)` (:math:`g = \sigma(W_g r_u)`)
        with the affinity-weighted projected keys :math:`C_{pij} W_i (\gamma \odot \bar
        K_{pj})` :obj:`(P, L_q L_k, a_{out})`. The variances separate into relation and
        entity factors, :math:`\alpha_i S_p \alpha_i^\top = \sum_{j,k} (g_{uij} g_{uik})
        (C_{pij} C_{pik} S_{pjk})`: :math:`L_q` products :obj:`(P, L_k^2) \times
        (L_k^2, U)` instead of :math:`P` products of :obj:`(U L_q, L_k) \times (L_k, L_k)`
        and passes over :obj:`(P, U, L_q, L_k)` tensors.
        """
        if transpose:
            gate = gate.transpose(-1, -2).contiguous()
        u, lq, lk = gate.shape
        p = side["pair"].size(0)
        gate_pair = (gate[..., :, None] * gate[..., None, :]).reshape(u, lq, lk * lk)
        var = torch.bmm(side["pair"].transpose(0, 1), gate_pair.permute(1, 2, 0))  # (Lq, P, U)
        scale = torch.rsqrt(var.permute(1, 2, 0).contiguous() / self.attention_channels
                            + self.norm.eps)  # (P, U, Lq)
        coef = gate[None] * scale[..., None]  # (P, U, Lq, Lk)
        gated = coef.view(p, u, lq * lk) @ side["keys_out"]  # (P, U, a_out)
        return gated.transpose(0, 1) + side["rest"][None]

    def prepare(self, entity: Tensor, text: Tensor | None = None, image: Tensor | None = None,
                text_lengths: Tensor | None = None, image_lengths: Tensor | None = None
                ) -> dict[str, Any]:
        """The relation-free half of the grid form for :math:`P` entities (structural
        projection :math:`W_{1,e} e`, each view's :meth:`_grid_side`), computed once and
        read by :meth:`grid` for any number of relation sets."""
        self._check_modalities(text, image)
        w_e = self.lin1.weight[:, :self.entity_channels]
        side: dict[str, Any] = {"entity": entity, "hidden": entity @ w_e.t()}
        if len(self.modalities) == 2:
            t, t_valid = self._tokens("text", text, text_lengths)
            i, i_valid = self._tokens("image", image, image_lengths)
            # text view (B3, B4): image tokens attend over text tokens, C = I T^T
            side["text"] = self._grid_side("text", t, t_valid, i)
            # image view (B1, B2): text tokens attend over image tokens, C^T = T I^T
            side["image"] = self._grid_side("image", i, i_valid, t)
        elif self.modalities:
            m = self.modalities[0]
            z, valid = self._tokens(m, text if m == "text" else image,
                                    text_lengths if m == "text" else image_lengths)
            side[m] = self._grid_side(m, z, valid, z)
        return side

    def grid(self, relation: Tensor, side: dict[str, Any], structure: bool = True
             ) -> dict[str, Tensor]:
        """The grid form's views :obj:`(U, P, *)` of relations :obj:`(U, d_r)` against the
        entities of :meth:`prepare`'s ``side`` (``structure=False``: the modality views only,
        e.g. next to :meth:`structure_dots`)."""
        out = ({"structure": self._structure(relation, side["entity"], side["hidden"], False)}
               if structure else {})
        for m in self.modalities:
            gate = torch.sigmoid(self.gates[m](relation)).view(-1, self._rows, self._cols)
            out[m] = self._grid_view(side[m], gate, m == "image" and len(self.modalities) == 2)
        return out

    def _structure(self, relation: Tensor, entity: Tensor, hidden: Tensor, pairwise: bool
                   ) -> Tensor:
        """Structural view: :math:`W_1 [e; r] = W_{1,e} e + W_{1,r} r`, broadcast over the grid
        (``hidden`` is :math:`W_{1,e} e`)."""
        w_r = self.lin1.weight[:, self.entity_channels:]
        hr = relation @ w_r.t() + self.lin1.bias
        att = torch.sigmoid(self.lin3(F.leaky_relu(
            hidden + hr if pairwise else hidden[None] + hr[:, None], 0.1)))
        return (entity if pairwise else entity[None]) * att

    def structure_dots(self, relation: Tensor, side: dict[str, Any], gold: Tensor,
                       counts: list[int]) -> tuple[Tensor, Tensor]:
        r"""The grid form's structural view :math:`v^s_{up}` reduced to what a similarity
        needs, without storing its :obj:`(U, P, \cdot)` intermediates: dot products
        :math:`\langle v^s_{up}, g_b\rangle` :obj:`(n, P)` with the rows :math:`g_b`
        :obj:`(n, F)` of ``gold``, grouped by relation (``counts[u]`` consecutive rows go with
        relation :math:`u`), and the norms :math:`\|v^s_{up}\|` :obj:`(U, P)`.

        The same numbers as ``grid(relation, side)["structure"]`` followed by the per-relation
        products and norms (and the same gradients, up to the order of float sums), computed
        one relation at a time so that every :obj:`(P, H)` / :obj:`(P, F)` intermediate
        stays in cache; only the gate :math:`\sigma(W_3 \cdot)` :obj:`(U, P, F)` is kept for
        the backward pass, which recomputes the rest (the LeakyReLU input is one add)."""
        if len(counts) != len(relation) or sum(counts) != len(gold):
            raise ValueError(f"structure_dots: {len(relation)} relations need as many counts "
                             f"summing to the {len(gold)} gold rows, got {counts}")
        w_r = self.lin1.weight[:, self.entity_channels:]
        hr = relation @ w_r.t() + self.lin1.bias
        return _StructureDots.apply(hr, side["hidden"], side["entity"], self.lin3.weight,
                                    self.lin3.bias, gold, list(counts))

    def _check_modalities(self, text: Tensor | None, image: Tensor | None) -> None:
        for m, x in (("text", text), ("image", image)):
            if (m in self.modalities) != (x is not None):
                raise ValueError(f"KCA was built with modalities {self.modalities}; "
                                 f"{m} tokens {'missing' if x is None else 'given'}")

    def forward(self, relation: Tensor, entity: Tensor, text: Tensor | None = None,
                image: Tensor | None = None, text_lengths: Tensor | None = None,
                image_lengths: Tensor | None = None, pairwise: bool = False
                ) -> dict[str, Tensor]:
        if not pairwise:
            return self.grid(relation, self.prepare(entity, text, image, text_lengths,
                                                    image_lengths))
        self._check_modalities(text, image)
        if len(relation) != len(entity):
            raise ValueError(f"pairwise KCA needs as many relations as entities, got "
                             f"{len(relation)} and {len(entity)}")
        w_e = self.lin1.weight[:, :self.entity_channels]
        out = {"structure": self._structure(relation, entity, entity @ w_e.t(), True)}
        if not self.modalities:
            return out
        rows, cols = self._rows, self._cols
        if len(self.modalities) == 2:
            t, t_valid = self._tokens("text", text, text_lengths)
            i, i_valid = self._tokens("image", image, image_lengths)
            g_text = torch.sigmoid(self.gates["text"](relation)).view(-1, rows, cols)
            g_image = torch.sigmoid(self.gates["image"](relation)).view(-1, rows, cols)
            out["text"] = self._view("text", t, t_valid, i, g_text)
            out["image"] = self._view("image", i, i_valid, t, g_image.transpose(-1, -2))
        else:
            m = self.modalities[0]
            tokens = text if m == "text" else image
            lengths = text_lengths if m == "text" else image_lengths
            z, valid = self._tokens(m, tokens, lengths)
            gate = torch.sigmoid(self.gates[m](relation)).view(-1, rows, cols)
            out[m] = self._view(m, z, valid, z, gate)
        return out

    def __repr__(self) -> str:
        mods = "".join(f", {m}={self.token_proj[m].in_features}x"
                       f"{self.text_tokens if m == 'text' else self.image_tokens}"
                       for m in self.modalities)
        return (f"{type(self).__name__}(entity={self.entity_channels}, "
                f"relation={self.relation_channels}{mods}, "
                f"attention={self.attention_channels})")


class _StructureDots(torch.autograd.Function):
    r""":meth:`KCA.structure_dots`: per relation :math:`u`, :math:`\phi = \mathrm{LeakyReLU}
    (W_{1,e} e + h_u)`, gate :math:`s = \sigma(W_3 \phi + b_3)`, view :math:`v = e \odot s`,
    outputs :math:`v g^\top` and :math:`\|v\|`; the backward pass is autograd's chain
    written out per relation (sigmoid and LeakyReLU backward by the same aten kernels)."""

    @staticmethod
    def forward(ctx, hr: Tensor, hidden: Tensor, entity: Tensor, w3: Tensor, b3: Tensor,
                gold: Tensor, counts: list[int]) -> tuple[Tensor, Tensor]:
        u, p = hr.size(0), entity.size(0)
        dots = entity.new_empty(gold.size(0), p)  # (n, P): (n_u, F) x (F, P) products
        norms = entity.new_empty(u, p)
        # one (P, F) gate per relation rather than one (U, P, F) tensor: blocks of this size
        # come back from the allocator's heap, a tensor of tens of MB is fresh pages each step
        gates = []
        start = 0
        for i, n in enumerate(counts):
            phi = F.leaky_relu_(hidden + hr[i], 0.1)
            gate = torch.addmm(b3, phi, w3.t()).sigmoid_()
            v = entity * gate
            torch.mm(gold[start:start + n], v.t(), out=dots[start:start + n])
            torch.linalg.vector_norm(v, dim=-1, out=norms[i])
            gates.append(gate)
            start += n
        ctx.counts = counts
        ctx.save_for_backward(hr, hidden, entity, w3, gold, norms, *gates)
        return dots, norms

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_dots: Tensor | None, grad_norms: Tensor | None):
        hr, hidden, entity, w3, gold, norms, *gates = ctx.saved_tensors
        need = ctx.needs_input_grad
        g_hr = torch.zeros_like(hr) if need[0] else None
        g_hidden = torch.zeros_like(hidden) if need[1] else None
        g_entity = torch.zeros_like(entity) if need[2] else None
        g_w3 = torch.zeros_like(w3) if need[3] else None
        g_b3 = torch.zeros_like(w3[:, 0]) if need[4] else None
        g_gold = torch.zeros_like(gold) if need[5] else None
        if grad_norms is not None:  # d||v|| / dv = v / ||v||, 0 at v = 0 (as torch's norm)
            grad_norms = torch.where(norms > 0, grad_norms / norms, 0.0)
        start = 0
        for i, n in enumerate(ctx.counts):
            s = gates[i]
            v = entity * s
            g_rows = gold[start:start + n]
            g_v = (grad_dots[start:start + n].t() @ g_rows if grad_dots is not None
                   else torch.zeros_like(v))
            if grad_norms is not None:
                g_v = g_v + v * grad_norms[i][:, None]
            if g_gold is not None and grad_dots is not None:
                torch.mm(grad_dots[start:start + n], v, out=g_gold[start:start + n])
            start += n
            if g_entity is not None:
                g_entity.addcmul_(g_v, s)
            if not any(need[:2]) and not any(need[3:5]):
                continue
            g_pre = torch.ops.aten.sigmoid_backward(g_v.mul_(entity), s)  # (P, F)
            x = hidden + hr[i]
            if g_w3 is not None:
                g_w3.addmm_(g_pre.t(), F.leaky_relu(x, 0.1))
            if g_b3 is not None:
                g_b3 += g_pre.sum(0)
            if need[0] or need[1]:
                g_x = torch.ops.aten.leaky_relu_backward(g_pre @ w3, x, 0.1, False)
                if g_hidden is not None:
                    g_hidden += g_x
                if g_hr is not None:
                    g_hr[i] = g_x.sum(0)
        return g_hr, g_hidden, g_entity, g_w3, g_b3, g_gold, None
