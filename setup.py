from setuptools import find_packages, setup

setup(
    name="mmgnn",
    version="0.1.0",
    description="Multimodal knowledge graphs on PyTorch Geometric: layers, published systems, "
    "KGE decoders and filtered link-prediction evaluation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mmgnn", "mmgnn.*"]),
    package_data={"mmgnn.data": ["registry.tsv"], "mmgnn.nn.kge": ["*.c"]},
    install_requires=[
        # torch is not pinned: install the build you want first (CI: `pip install torch==2.13.0`).
        "torch>=2.1",
        "torch_geometric>=2.5",
        "transformers>=4.40",
        "numpy>=1.24",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pillow>=9",  # images of the image modality
        # the command line and config files (options generated from the dataclasses, YAML)
        "jsonargparse[signatures]>=4.30",
        # the CRF of MKGformer's NER head (MKGformerNER), the package the released MNER uses
        "pytorch-crf>=0.7",
    ],
    extras_require={
        # PyKEEN is a peer the tests check scores against (PairRE, TuckER) and the benchmarks
        # compare with; mmgnn itself never imports it.
        # seqeval: the peer the NER entity-F1 test checks mmgnn.eval.sequence against
        "test": ["pytest>=7", "pykeen>=1.10", "hypothesis>=6", "seqeval>=1.2"],
        # sentence-transformers is the peer of benchmarks/features_speed.py; install it with
        # --no-deps (its requirements are mmgnn's own).
        "bench": ["pykeen>=1.10"],
        "dev": ["pytest>=7", "ruff>=0.5", "pykeen>=1.10", "hypothesis>=6", "seqeval>=1.2"],
    },
    entry_points={"console_scripts": ["mmgnn=mmgnn.cli:main"]},
)
