"""The multimodal KG, readers for each on-disk format, the benchmark datasets, filters."""

from mmgnn.data.datasets import (
    dataset_statistics,
    dataset_table,
    find_local,
    list_datasets,
    load_dataset,
)
from mmgnn.data.download import download_dataset, verify
from mmgnn.data.filter import FilterIndex
from mmgnn.data.folders import detect_format
from mmgnn.data.kg import MultiModalKG, inverse_relation, relation_count
from mmgnn.data.mnre import RelationExamples, load_mnre, read_mnre
from mmgnn.data.parsing import DataFormatError
from mmgnn.data.quirks import DatasetQuirkWarning
from mmgnn.data.readers import (
    build_vocabulary,
    encode_triples,
    read_id_triples,
    read_id_vocab,
    read_ntriples,
    read_string_triples,
)
from mmgnn.data.side_info import (
    EntityTexts,
    NumericAttributes,
    names_from_uris,
    read_entity_text,
    read_numeric_triples,
    read_wikidata_json,
    read_wordnet_text,
    uri_to_name,
)
from mmgnn.data.synthetic import synthetic_kg
from mmgnn.data.twitter_ner import TaggedSentences, load_twitter_ner, read_conll_bio

__all__ = [
    "MultiModalKG",
    "inverse_relation", "relation_count",
    "DataFormatError",
    "FilterIndex",
    "load_dataset",
    "synthetic_kg",
    "list_datasets",
    "dataset_statistics",
    "dataset_table",
    "detect_format",
    "find_local",
    "DatasetQuirkWarning",
    "download_dataset",
    "verify",
    "read_id_vocab",
    "read_id_triples",
    "read_string_triples",
    "read_ntriples",
    "build_vocabulary",
    "encode_triples",
    "EntityTexts",
    "NumericAttributes",
    "read_entity_text",
    "read_wikidata_json",
    "read_wordnet_text",
    "read_numeric_triples",
    "names_from_uris",
    "uri_to_name",
    "RelationExamples",
    "read_mnre",
    "load_mnre",
    "TaggedSentences",
    "read_conll_bio",
    "load_twitter_ner",
]
