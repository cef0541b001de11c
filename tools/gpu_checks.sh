#!/usr/bin/env bash
# GPU checks of mmdidb.ops, in one go (a few minutes on an H100; the
# timeouts below cap it at 7.5 minutes):
#   1. every csrc/*.cu compiles for sm_80 and sm_90 (nvcc, and NVRTC if CuPy
#      is installed),
#   2. the GPU tests: both kernel paths and the packing kernel are exact,
#   3. the binary-GEMM benchmark (appends to docs/benchmarks.md).
# Needs torch with CUDA, cupy (requirements/cuda.txt), pytest; no OpenMMLab.
#
# Usage: tools/gpu_checks.sh [LOG_DIR] [--quick]
#   LOG_DIR (default: $TMPDIR/mmdidb_gpu_checks) receives the logs and a copy of
#   docs/benchmarks.md; --quick runs the short benchmark.
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG_DIR=${TMPDIR:-/tmp}/mmdidb_gpu_checks
BENCH_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --quick) BENCH_ARGS=(--quick) ;;
    *) LOG_DIR=$arg ;;
  esac
done
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 MMDIDB_OPS_STRICT=1
status=0

echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
python -c 'import torch, cupy; print("torch", torch.__version__, "cuda", torch.version.cuda, "cupy", cupy.__version__)' \
  || { echo "torch with CUDA and cupy are required"; exit 2; }

echo "== 1/3 compile check"
NVRTC_FLAG=""
python -c 'from mmdidb.ops.compile_check import nvrtc_available as f; raise SystemExit(0 if f() else 1)' && NVRTC_FLAG=--nvrtc
timeout 60 python -m mmdidb.ops.compile_check $NVRTC_FLAG 2>&1 | tee "$LOG_DIR/compile_check.log" || status=1

echo "== 2/3 GPU tests"
timeout 180 python -m pytest tests/ops/test_ops_gpu.py -v -p no:cacheprovider 2>&1 \
  | tee "$LOG_DIR/test_ops_gpu.log" || status=1

echo "== 3/3 benchmark"
timeout 200 python tools/benchmark/bgemm.py "${BENCH_ARGS[@]}" 2>&1 \
  | tee "$LOG_DIR/bgemm.log" || status=1
[[ -f docs/benchmarks.md ]] && cp docs/benchmarks.md "$LOG_DIR/benchmarks.md"

echo "== done, status $status (logs in $LOG_DIR)"
exit $status
