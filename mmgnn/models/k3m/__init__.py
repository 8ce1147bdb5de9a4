"""K3M (Zhu et al., 2021) in one place: the model, its product graph, pretraining
objectives, downstream heads and builders. Its training recipes (which run the
:class:`~mmgnn.train.Trainer`) are :mod:`mmgnn.recipes.k3m`."""

from mmgnn.models.k3m.build import SIZES, build_k3m, load_product_graph
from mmgnn.models.k3m.heads import ItemClassifier, PairClassifier, classification_accuracy
from mmgnn.models.k3m.model import K3M, K3MConfig
from mmgnn.models.k3m.pretraining import K3MPretraining, load_encoder, save_encoder
from mmgnn.models.k3m.product_graph import (
    build_product_graph,
    category_split,
    k3m_sample_files,
    k3m_tokenizer,
    load_k3m_sample,
)
from mmgnn.models.k3m.products import ProductTable, read_k3m_products

__all__ = ["K3M", "K3MConfig", "K3MPretraining", "ItemClassifier", "PairClassifier",
           "classification_accuracy", "save_encoder", "load_encoder", "build_k3m",
           "load_product_graph", "SIZES", "build_product_graph", "category_split",
           "k3m_sample_files", "k3m_tokenizer", "load_k3m_sample", "ProductTable",
           "read_k3m_products"]
