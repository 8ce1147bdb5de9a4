#!/usr/bin/env bash
# Stages, on a machine that reaches PyPI, what the GPU suite needs on a device machine that
# reaches nothing: wheels for its Python 3.12 (what its image lacks: jsonargparse, PyKEEN and
# their needs; torch_scatter only if PyPI has a prebuilt wheel for it) and the DB15K dataset,
# into .gpu_suite/ (git-ignored through .git/info/exclude; name it in the run's `carry`).
#
#   MMGNN_DATA=../shared/datasets bash benchmarks/gpu_suite/prepare.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=.gpu_suite
grep -qx "/$STAGE/" .git/info/exclude 2>/dev/null || echo "/$STAGE/" >> .git/info/exclude
rm -rf "$STAGE/whl"
mkdir -p "$STAGE/whl" "$STAGE/data"
cp -r "${MMGNN_DATA:-../shared/datasets}/DB15K" "$STAGE/data/"
dl() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$STAGE/whl" "$@"
}
# mmgnn's command line (the image has PyYAML and typing_extensions), and PyKEEN 1.11 with what
# it needs beyond the image (numpy, scipy, pandas, scikit-learn, click, requests, tqdm, tabulate,
# torch are there); the versions this project's environment runs.
dl jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 importlib_resources \
  pykeen==1.11.1 class-resolver==0.8.2 docdata==0.0.5 more-click==0.1.3 more-itertools==11.2.1 \
  pystow==0.10.3 torch-max-mem==0.1.6 torch-ppr==0.0.8 dataclasses-json==0.6.7 \
  marshmallow==3.26.2 typing-inspect==0.9.0 mypy-extensions==1.2.0 click-default-group==1.2.4 \
  optuna==5.1.0 alembic==1.20.1 sqlalchemy==2.1.9 colorlog==6.12.0 mako==1.4.3 greenlet
# torch_scatter: PyPI has no binary wheel of it (source only); the suite never compiles it.
# Put a wheel built for the device's torch (2.11 + CUDA 13 as last seen) into $STAGE/whl by
# hand to have PyG use it.
dl torch-scatter 2>/dev/null || echo "prepare.sh: no prebuilt torch-scatter wheel on PyPI; \
the suite measures PyG without it (its torch.scatter_reduce fallbacks)" >&2
# DB15K's entity-name text features for benchmarks/gpu_suite/reproduce.py (the device has no
# MiniLM weights): MiniLM-L6 on this machine, read there through the precomputed modality.
python3 -m mmgnn features --dataset DB15K --modality text --out "$STAGE/db15k_text.pt" --quiet
du -sh "$STAGE" "$STAGE"/*
