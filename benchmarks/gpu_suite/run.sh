#!/usr/bin/env bash
# The GPU suite of issue 19 (README.md beside this file): installs what it needs from the carried
# wheels, runs the GPU half of the tests, and measures evaluation against the matmul bound,
# training triples/s against PyG nn.kge and PyKEEN, KBGATConv/K3MGATConv against GATConv, peak
# memory, which scatter kernels PyG runs, and a 2-process DDP run when there are 2+ GPUs.
# Everything lands under $OUT (at most 8 files come back from a device machine: summary.txt,
# results.jsonl, gnn_speed.json, ddp_speed.json, pytest.txt, logs.tar.gz).
#
#   OUT=/tmp/gpu bash benchmarks/gpu_suite/run.sh                       # on one H200, ~10 min
#   OUT=/tmp/gpu bash benchmarks/gpu_suite/run.sh --device cpu --quick  # a dry run on a CPU
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/results/gpu_suite}
DEVICE=cuda
QUICK=""
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=$2; shift ;;
    --device=*) DEVICE=${1#*=} ;;
    --quick) QUICK=--quick ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT/logs"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
STAGE=.gpu_suite   # what benchmarks/gpu_suite/prepare.sh staged: wheels, datasets
export MMGNN_DATA=${MMGNN_DATA:-$PWD/$STAGE/data}
START=$(date +%s)

step() {  # step NAME TIMEOUT_S COMMAND...: logs to $OUT/logs/NAME.log, one line to summary.txt
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/logs/$name.log" 2>&1
  local rc=$?
  printf '%-12s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "${*:1:6}" \
    | tee -a "$OUT/summary.txt"
  return 0
}

# 1. Install: mmgnn from this tree; the carried wheels (jsonargparse, PyKEEN and their needs;
#    torch_scatter only as a prebuilt wheel matching the installed torch, never compiled).
if [ -d "$STAGE/whl" ]; then
  step install 300 $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site "$STAGE"/whl/*.whl
fi
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
step env 60 $PY -c "import torch, torch_geometric, mmgnn, jsonargparse; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count()); \
print('torch_geometric', torch_geometric.__version__, 'WITH_TORCH_SCATTER', \
torch_geometric.typing.WITH_TORCH_SCATTER)"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)

# 2. The device half of the device-parametrised tests (-k cuda; -k cpu for a CPU dry run),
#    then the data-parallel and sharded-ranking tests (2 gloo ranks on the CPU cores).
if [ "$DEVICE" = cpu ]; then SELECT="cpu"; else SELECT="cuda"; fi
step pytest 200 $PY -m pytest -q -p no:cacheprovider tests/test_device.py -k "$SELECT"
step pytest_ddp 300 $PY -m pytest -q -p no:cacheprovider tests/train/test_distributed.py \
  tests/eval/test_sharded_eval.py
cat "$OUT/logs/pytest.log" "$OUT/logs/pytest_ddp.log" > "$OUT/pytest.txt"

# 3. Measurements (suite.py appends to results.jsonl).
step suite 300 $PY benchmarks/gpu_suite/suite.py --out "$OUT" --device "$DEVICE" $QUICK
if [ -z "$QUICK" ]; then
  step gnn_speed 180 $PY benchmarks/gnn_speed.py --dataset DB15K --device "$DEVICE" \
    --steps 10 --repeats 2 --json "$OUT/gnn_speed.json"
fi
if [ "$GPUS" -gt 1 ] || [ "$DEVICE" = cpu ]; then
  # 2 ranks (NCCL, one GPU each) against 1 at the same global batch.
  if [ -n "$QUICK" ]; then DDP="--quick"; else DDP="--steps 50 --batch 4096 --rounds 2"; fi
  step ddp_speed 240 $PY benchmarks/ddp_speed.py --device "$DEVICE" --configs 1x1,2x1 $DDP \
    --results "$OUT/ddp_speed"
else
  echo "ddp_speed    skipped: $GPUS GPU(s); a 2-process DDP run needs 2" | tee -a "$OUT/summary.txt"
fi

# Issue 17: the paper-scale recipes (NativE, IMF on DB15K at the released dims), 1.5 min each.
step reproduce 330 $PY benchmarks/gpu_suite/reproduce.py --out "$OUT" --device "$DEVICE" $QUICK

tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$OUT/logs"
echo "total $(( $(date +%s) - START ))s" | tee -a "$OUT/summary.txt"
