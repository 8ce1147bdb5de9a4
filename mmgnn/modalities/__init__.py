"""Feature encoders per modality, the registry through which a new one is added, the feature
cache and the fill strategies for missing modalities.

Built in: ``text`` (:class:`TextModality`), ``image`` (:class:`ImageModality`), ``numeric``
(:class:`NumericModality`) and ``precomputed`` (:class:`PrecomputedModality`). A new modality is
a :class:`Modality` subclass with :meth:`~Modality.read`, :meth:`~Modality.encode` and
:meth:`~Modality.settings`, registered with :func:`register_modality`.
"""

from mmgnn.modalities.base import (
    MODALITIES,
    Modality,
    ModalityFeatures,
    attach_modalities,
    available_modalities,
    build_modality,
    fingerprint,
    pool_sequence,
    register_modality,
)
from mmgnn.modalities.cache import FeatureCache, default_feature_cache_dir
from mmgnn.modalities.image import ImageModality, encode_images, list_entity_images
from mmgnn.modalities.missing import FILL_STRATEGIES, MissingModalityFill, fill_missing
from mmgnn.modalities.numeric import NumericModality
from mmgnn.modalities.precomputed import PrecomputedModality, load_feature_file
from mmgnn.modalities.pretrained import default_text_encoder, encoder_fingerprint
from mmgnn.modalities.store import ModalityStore, pool_vectors
from mmgnn.modalities.text import TextModality, default_fields, encode_texts, entity_texts

__all__ = [
    "MODALITIES",
    "Modality",
    "ModalityFeatures",
    "register_modality",
    "build_modality",
    "available_modalities",
    "attach_modalities",
    "fingerprint",
    "pool_sequence",
    "ModalityStore",
    "pool_vectors",
    "FeatureCache",
    "default_feature_cache_dir",
    "TextModality",
    "encode_texts",
    "entity_texts",
    "default_fields",
    "ImageModality",
    "encode_images",
    "list_entity_images",
    "NumericModality",
    "PrecomputedModality",
    "load_feature_file",
    "FILL_STRATEGIES",
    "fill_missing",
    "MissingModalityFill",
    "default_text_encoder",
    "encoder_fingerprint",
]
