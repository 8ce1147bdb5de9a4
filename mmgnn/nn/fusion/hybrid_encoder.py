"""MKGformer's hybrid transformer: a BERT-family text model and a ViT/CLIP vision tower run in
lock-step, fused in their last layers by PGI and CAF."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmgnn.nn.fusion.caf import CorrelationAwareFusion
from mmgnn.nn.fusion.pgi import PrefixGuidedAttention

# The released slot sizes for a 224-pixel tower: one main image, three "aux" images at 128 px
# and three "rcnn" images at 64 px (spec MKGformer.md, "Visual tokens").
REFERENCE_SIZES = (224, 128, 128, 128, 64, 64, 64)


def default_image_sizes(image_size: int, patch_size: int,
                        max_images: int = len(REFERENCE_SIZES)) -> tuple[int, ...]:
    """The released slot sizes scaled to a tower of ``image_size`` pixels, each rounded down
    to a multiple of ``patch_size`` (at least one patch): 224 / 32 gives 7×7, 4×4 and 2×2
    patch grids, 109 visual tokens for seven images."""
    if not 1 <= max_images <= len(REFERENCE_SIZES):
        raise ValueError(f"max_images must be in 1..{len(REFERENCE_SIZES)}, got {max_images}")
    return tuple(max(patch_size, int(s * image_size / 224) // patch_size * patch_size)
                 for s in REFERENCE_SIZES[:max_images])


class _TextLayer(torch.nn.Module):
    """One BERT-family layer (post-LN) run from its own pretrained sub-modules, returning the
    keys/values of its self-attention for the PGI of the next vision layer, with an optional
    CAF term in its FFN."""

    def __init__(self, layer: torch.nn.Module, caf: CorrelationAwareFusion | None) -> None:
        super().__init__()
        attention = getattr(layer, "attention", None)
        if attention is None or not hasattr(attention, "self") or \
                not hasattr(getattr(layer, "intermediate", None), "dense"):
            raise TypeError(f"{type(layer).__name__} is not a BERT-family layer (expected "
                            f"attention.self.query/key/value, attention.output, intermediate, "
                            f"output as in BertLayer, RobertaLayer, ...)")
        self.attention, self.intermediate, self.output = attention, layer.intermediate, layer.output
        self.heads = attention.self.num_attention_heads
        self.caf = caf

    def forward(self, h: Tensor, mask: Tensor, visual: Tensor | None = None,
                rows: Tensor | None = None, visual_mask: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        sa = self.attention.self
        b, n, d = h.shape

        def split(x: Tensor) -> Tensor:
            return x.view(b, n, self.heads, -1).transpose(1, 2)

        q, k, v = split(sa.query(h)), split(sa.key(h)), split(sa.value(h))
        p = sa.dropout.p if self.training else 0.0
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                                 dropout_p=p).transpose(1, 2).reshape(b, n, d)
        a = self.attention.output(context, h)
        pre = self.intermediate.dense(a)
        if self.caf is not None and visual is not None:
            pre = pre.index_add(0, rows, self.caf(context[rows], visual, visual_mask))
        out = self.output(self.intermediate.intermediate_act_fn(pre), a)
        return out, k, v


class _VisionLayer(torch.nn.Module):
    """One pre-LN ViT or CLIP vision layer run from its pretrained sub-modules, its
    self-attention a :class:`PrefixGuidedAttention` sharing the layer's projections."""

    def __init__(self, layer: torch.nn.Module, heads: int, dropout: float) -> None:
        super().__init__()
        if hasattr(layer, "layer_norm1"):  # CLIP
            attn = layer.self_attn
            self.ln1, self.ln2 = layer.layer_norm1, layer.layer_norm2
            out_proj = attn.out_proj
        elif hasattr(layer, "layernorm_before"):  # ViT
            attn = layer.attention
            attn = getattr(attn, "attention", attn)
            self.ln1, self.ln2 = layer.layernorm_before, layer.layernorm_after
            out_proj = getattr(attn, "o_proj", None) or layer.attention.output.dense
        else:
            raise TypeError(f"{type(layer).__name__} is not a ViT or CLIP vision layer")
        q, k, v = (getattr(attn, f"{c}_proj", None) or getattr(attn, name)
                   for c, name in (("q", "query"), ("k", "key"), ("v", "value")))
        self.pgi = PrefixGuidedAttention.from_projections(q, k, v, out_proj, heads, dropout)
        self.mlp = layer.mlp if hasattr(layer, "mlp") else torch.nn.Sequential(
            layer.intermediate, layer.output.dense)
        self.dropout = getattr(layer, "dropout", torch.nn.Identity())

    def forward(self, x: Tensor, prefix_key: Tensor | None, prefix_value: Tensor | None,
                prefix_mask: Tensor | None, mask: Tensor) -> Tensor:
        x = x + self.dropout(self.pgi(self.ln1(x), prefix_key, prefix_value, prefix_mask, mask))
        return x + self.dropout(self.mlp(self.ln2(x)))


def _vision_parts(model: torch.nn.Module):
    """(config, patch conv, pre-layernorm, layers) of a ViT or CLIP vision tower."""
    model = getattr(model, "vision_model", model)
    emb = getattr(model, "embeddings", None)
    conv = getattr(emb, "patch_embedding", None)
    if conv is None and emb is not None and hasattr(emb, "patch_embeddings"):
        conv = emb.patch_embeddings.projection
    layers = getattr(model, "layers", None)
    if layers is None and hasattr(model, "encoder"):
        layers = getattr(model.encoder, "layers", None) or getattr(model.encoder, "layer", None)
    if conv is None or layers is None:
        raise TypeError(f"{type(model).__name__} is not a ViT or CLIP vision tower (expected "
                        f"a patch-embedding convolution and a list of encoder layers)")
    pre_ln = getattr(model, "pre_layrnorm", None) or torch.nn.Identity()
    return model.config, conv, pre_ln, layers


class HybridEncoder(torch.nn.Module):
    r"""The hybrid transformer of MKGformer (`Chen et al., SIGIR 2022
    <https://arxiv.org/abs/2205.02357>`_, Sec. 3.2; spec ``MKGformer.md``, section 1): a
    BERT-family text model (BERT, MiniLM, RoBERTa, ...) and a ViT or CLIP vision tower with
    the same number of layers :math:`L`, run in lock-step, the last :math:`M` layers forming
    the M-Encoder. At depth :math:`l` the vision layer runs first, then the text layer:

    .. math::
        V^{l} &= \begin{cases} \mathrm{ViTLayer}_l(V^{l-1}) & l < L - M \\
                 \mathrm{ViTLayer}_l(V^{l-1};\ \mathrm{PGI}\ \text{prefix}\
                 K_t^{l-1}, V_t^{l-1}) & l \ge L - M \end{cases}

        H^{l} &= \begin{cases} \mathrm{BertLayer}_l(H^{l-1}) & l < L - M \\
                 \mathrm{BertLayer}_l(H^{l-1};\ \mathrm{FFN} + \mathrm{CAF}(C^l, V^l))
                 & l \ge L - M \end{cases}

    with :math:`K_t^{l-1}, V_t^{l-1}` the keys and values text layer :math:`l-1` computed
    from its input (:class:`~mmgnn.nn.fusion.PrefixGuidedAttention`) and :math:`C^l` the
    attention context of text layer :math:`l`
    (:class:`~mmgnn.nn.fusion.CorrelationAwareFusion`). The output is the text stream
    :math:`H^L`.

    **Visual tokens** (MKG version of ``CLIPVisionEmbeddings``): only the patch convolution,
    **no CLS token and no position embeddings**, then the tower's pre-layernorm (CLIP). Up to
    :math:`K` images per sample, image :math:`k` resized to ``image_sizes[k]`` (by default
    :func:`default_image_sizes`: one main image at the tower's resolution, three at 4/7 and
    three at 2/7 of it); the tokens of all images are concatenated. Absent images are
    **masked** out of every attention (vision self-attention, PGI, CAF), and samples without
    any image skip the vision stream: their text stream is the plain text model's. The
    released code instead feeds zero images whose tokens the attention still sees; and it
    does not mask text padding in the PGI prefix (``mask_prefix_padding=False``).

    Pretrained weights are used in place: the wrapped layers share the given models'
    modules. Only the CAF projections are new (:meth:`reset_parameters`: normal with the text
    config's ``initializer_range``, zero bias, as the released model initialises them).

    Args:
        text_model (torch.nn.Module): A ``transformers`` BERT-family model (``BertModel``,
            ...); its embeddings and layers are used.
        vision_model (torch.nn.Module, optional): A ``transformers`` ViT or CLIP vision tower
            with the text model's number of layers, width and heads. (default: text only)
        fusion_layers (int, optional): :math:`M`. (default: :obj:`4` as released, at most
            :math:`L - 1`, with a vision tower; :obj:`0` without)
        image_sizes (Sequence[int], optional): Pixel size of each image slot (multiples of
            the patch size). (default: :func:`default_image_sizes`)
        mask_prefix_padding (bool): Mask padded text tokens in the PGI prefix.
            (default: :obj:`True`)

    Shapes:
        - **input_ids**, **attention_mask:** :math:`(B, L_t)`; **pixel_values:** one
          :math:`(B_v, 3, S_k, S_k)` tensor per image slot for the :math:`B_v` samples
          ``image_rows`` that have images; **image_mask:** :math:`(B_v, K)` bool.
        - **output:** :math:`(B, L_t, d)`.
    """

    def __init__(self, text_model: torch.nn.Module, vision_model: torch.nn.Module | None = None,
                 fusion_layers: int | None = None, image_sizes: Sequence[int] | None = None,
                 mask_prefix_padding: bool = True) -> None:
        super().__init__()
        config = text_model.config
        text_layers = text_model.encoder.layer
        num_layers = len(text_layers)
        if fusion_layers is None:
            fusion_layers = min(4, num_layers - 1) if vision_model is not None else 0
        self.num_layers, self.fusion_layers = num_layers, int(fusion_layers)
        self.mask_prefix_padding = mask_prefix_padding
        self.hidden_channels, self.heads = config.hidden_size, config.num_attention_heads
        self.initializer_range = getattr(config, "initializer_range", 0.02)
        self.embeddings = text_model.embeddings
        if vision_model is None:
            if self.fusion_layers:
                raise ValueError("fusion_layers > 0 needs a vision_model (a ViT or CLIP tower)")
            self.text_layers = torch.nn.ModuleList(_TextLayer(layer, None) for layer in text_layers)
            self.register_module("patch_embedding", None)
            self.register_module("pre_layernorm", None)
            self.vision_layers = torch.nn.ModuleList()
            self.image_sizes: tuple[int, ...] = ()
            self.patch_size = 0
            self.reset_parameters()
            return
        vconfig, conv, pre_ln, vlayers = _vision_parts(vision_model)
        if not 0 <= self.fusion_layers < num_layers:
            raise ValueError(f"fusion_layers must be in 0..{num_layers - 1} (PGI of the first "
                             f"fusion layer reads the text layer below it), got {fusion_layers}")
        if len(vlayers) != num_layers or vconfig.hidden_size != self.hidden_channels or \
                vconfig.num_attention_heads != self.heads:
            raise ValueError(
                f"the towers run in lock-step and share keys: the vision tower has "
                f"{len(vlayers)} layers of width {vconfig.hidden_size} with "
                f"{vconfig.num_attention_heads} heads, the text model {num_layers} of width "
                f"{self.hidden_channels} with {self.heads}; build the vision tower with the "
                f"text model's num_hidden_layers, hidden_size and num_attention_heads")
        first = num_layers - self.fusion_layers
        self.text_layers = torch.nn.ModuleList(
            _TextLayer(layer, CorrelationAwareFusion(self.hidden_channels,
                                                     config.intermediate_size)
                       if i >= first else None)
            for i, layer in enumerate(text_layers))
        dropout = getattr(vconfig, "attention_dropout",
                          getattr(vconfig, "attention_probs_dropout_prob", 0.0))
        self.vision_layers = torch.nn.ModuleList(
            _VisionLayer(layer, self.heads, dropout) for layer in vlayers)
        self.patch_embedding, self.pre_layernorm = conv, pre_ln
        self.patch_size = conv.kernel_size[0]
        self.image_sizes = tuple(image_sizes) if image_sizes is not None else \
            default_image_sizes(vconfig.image_size, self.patch_size)
        bad = [s for s in self.image_sizes if s % self.patch_size or s <= 0]
        if bad:
            raise ValueError(f"image_sizes {bad} are not positive multiples of the patch size "
                             f"{self.patch_size}")
        self.reset_parameters()

    @property
    def max_images(self) -> int:
        """:math:`K`, the number of image slots."""
        return len(self.image_sizes)

    @property
    def tokens_per_image(self) -> list[int]:
        """Visual tokens of each image slot, :math:`(S_k / p)^2`."""
        return [(s // self.patch_size) ** 2 for s in self.image_sizes]

    def reset_parameters(self) -> None:
        """Re-initialises the new CAF projections (the pretrained weights are kept)."""
        for layer in self.text_layers:
            if layer.caf is not None:
                torch.nn.init.normal_(layer.caf.fusion_dense.weight, std=self.initializer_range)
                torch.nn.init.zeros_(layer.caf.fusion_dense.bias)

    def visual_tokens(self, pixel_values: Sequence[Tensor], image_mask: Tensor
                      ) -> tuple[Tensor, Tensor]:
        """Patch tokens :math:`(B_v, P, d)` of the images (no CLS, no positions, then the
        pre-layernorm) and their validity mask :math:`(B_v, P)`."""
        if len(pixel_values) != self.max_images or image_mask.size(1) != self.max_images:
            raise ValueError(f"expected {self.max_images} image slots, got {len(pixel_values)} "
                             f"pixel tensors and an image mask of {image_mask.size(1)}")
        tokens = [self.patch_embedding(px).flatten(2).transpose(1, 2) for px in pixel_values]
        mask = torch.cat([image_mask[:, k:k + 1].expand(-1, t.size(1))
                          for k, t in enumerate(tokens)], dim=1)
        return self.pre_layernorm(torch.cat(tokens, dim=1)), mask

    def forward(self, input_ids: Tensor, attention_mask: Tensor,
                pixel_values: Sequence[Tensor] | None = None, image_mask: Tensor | None = None,
                image_rows: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        mask = attention_mask.bool()
        h = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids
                            if token_type_ids is not None else torch.zeros_like(input_ids))
        vis = vmask = None
        if pixel_values is not None and self.vision_layers and image_rows is not None \
                and len(image_rows):
            vis, vmask = self.visual_tokens(pixel_values, image_mask.bool())
        first = self.num_layers - self.fusion_layers
        kv: tuple[Tensor, Tensor] | None = None
        for i, text_layer in enumerate(self.text_layers):
            fuse = i >= first and self.fusion_layers > 0
            if vis is not None:
                prefix = (kv[0][image_rows], kv[1][image_rows]) if fuse else (None, None)
                pmask = mask[image_rows] if fuse and self.mask_prefix_padding else None
                vis = self.vision_layers[i](vis, *prefix, pmask, vmask)
            h, k, v = text_layer(h, mask, vis if fuse else None, image_rows, vmask)
            kv = (k, v)
        return h

    def __repr__(self) -> str:
        vision = f", image_sizes={list(self.image_sizes)}" if self.vision_layers else ""
        return (f"{type(self).__name__}(layers={self.num_layers}, "
                f"hidden_channels={self.hidden_channels}, heads={self.heads}, "
                f"fusion_layers={self.fusion_layers}{vision})")
