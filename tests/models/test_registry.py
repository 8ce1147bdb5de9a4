"""The model registry: names, errors, a user's model built through ``build_model`` with the
data-derived arguments filled from the graph, fixed arguments, and a torch-free import."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from mmgnn.models import LinkPredictor, build_model, register_model
from mmgnn.models.kge_model import KGEModel
from mmgnn.models.registry import KGE_DECODERS, MODELS, available_models
from mmgnn.nn.kge import DECODERS
from tests.helpers import random_kg


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        MODELS._entries.pop(n, None)


def test_built_in_names():
    assert available_models() == MODELS.names()
    assert {"multimodal", "gat_transe", "imf", "mkgformer", "native"} < set(MODELS.names())
    assert "k3m" not in MODELS  # not a link predictor
    assert sorted(KGE_DECODERS) == DECODERS.names()  # every decoder is a model name


def test_unknown_name_lists_the_names_and_suggests_the_closest():
    kg = random_kg()
    with pytest.raises(KeyError, match="did you mean 'transe'") as err:
        build_model("transee", kg)
    assert "Known: complex, distmult, gat_transe, imf" in str(err.value)
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        build_model("nope", kg)


def test_decoder_names_build_a_kge_model_with_fixed_decoder():
    kg = random_kg()
    torch.manual_seed(0)
    model = build_model("rotate", kg, dim=6, reciprocal=True, margin=3.0)
    assert type(model) is KGEModel
    assert model.num_entities == kg.num_entities and model.num_relations == kg.num_relations
    assert type(model.decoder).__name__ == "RotatE" and model.decoder.margin == 3.0
    assert model.decoder.num_relations == 2 * kg.num_relations
    torch.manual_seed(0)
    direct = KGEModel(kg.num_entities, kg.num_relations, "rotate", dim=6, reciprocal=True,
                      margin=3.0)
    for p, q in zip(model.parameters(), direct.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(TypeError, match="fixes \\['decoder'\\]"):
        build_model("transe", kg, decoder="distmult")


def test_a_user_model_registers_and_builds_with_the_graph_filled_in(registered):
    kg = random_kg()

    @register_model("edge_counter_test")
    class EdgeCounter(LinkPredictor):
        def __init__(self, num_entities, num_relations, edge_index, edge_type, kg, dim=4):
            super().__init__(num_entities, num_relations, "distmult", hidden_channels=dim)
            self.edge_index, self.edge_type, self.graph = edge_index, edge_type, kg
            self.entity = torch.nn.Embedding(num_entities, dim)

        def encode(self):
            return self.entity.weight

    registered.append("edge_counter_test")
    model = build_model("Edge_Counter_Test", kg, dim=3)
    assert isinstance(model, EdgeCounter) and model.entity.weight.shape == (kg.num_entities, 3)
    edge_index, edge_type = kg.train_graph()
    assert torch.equal(model.edge_index, edge_index) and torch.equal(model.edge_type, edge_type)
    assert model.graph is kg and model.num_relations == kg.num_relations
    assert repr(model).startswith(f"EdgeCounter({kg.num_entities}, decoder=DistMult(")
    # an argument the model does not take is named, with the ones it does
    with pytest.raises(TypeError, match="takes no argument 'width'; its arguments: dim"):
        build_model("edge_counter_test", kg, width=3)
    # the same name twice is an error unless replaced
    with pytest.raises(ValueError, match="already registered"):
        register_model("edge_counter_test", KGEModel)


def test_fixed_arguments_of_a_registered_name(registered):
    kg = random_kg()
    register_model("small_tucker_test", KGEModel, decoder="tucker", dim=3)
    registered.append("small_tucker_test")
    model = build_model("small_tucker_test", kg, reciprocal=True)
    assert type(model.decoder).__name__ == "TuckER" and model.decoder.hidden_channels == 3
    assert model.reciprocal


def test_modalities_are_filled_from_the_graph(registered):
    kg = random_kg()
    kg.add_modality("text", torch.randn(kg.num_entities, 5))
    kg.add_modality("image", torch.randn(kg.num_entities, 7))

    class Reader(KGEModel):
        def __init__(self, num_entities, num_relations, modalities, dim=4):
            super().__init__(num_entities, num_relations, "distmult", dim=dim)
            self.modalities = modalities

    register_model("reader_test", Reader)
    registered.append("reader_test")
    model = build_model("reader_test", kg)
    assert sorted(model.modality_names) == ["image", "text"]
    only = build_model("reader_test", kg, modality_names=["image"])
    assert only.modality_names == ["image"]
    torch.testing.assert_close(only.modality("image")[0], kg.features["image"])
    with pytest.raises(TypeError, match="reads no modalities"):
        build_model("distmult", kg, modality_names=["text"])


def test_the_registry_imports_no_torch():
    code = ("import sys; from mmgnn.models.registry import MODELS; MODELS.names(); "
            "import mmgnn.models; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
