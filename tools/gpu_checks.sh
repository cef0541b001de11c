#!/usr/bin/env bash
# GPU checks of mmdidb, in one go (a few minutes on an H100; the timeouts
# below cap it at 10 minutes):
#   1. every csrc/*.cu compiles for sm_80 and sm_90 (nvcc, and NVRTC if CuPy
#      is installed),
#   2. the GPU tests of mmdidb.ops: both kernel paths and the packing kernel
#      are exact,
#   3. the binary-GEMM benchmark (appends to docs/benchmarks.md),
#   4. the deploy-mode GPU tests: a whole DIDB-ViT on the CuPy kernels equals
#      its training graph (tests/deploy/test_deploy_gpu.py),
#   5. the inference benchmark, quick mode: deploy-mode DeiT-S, Swin-T and
#      BinaryViT-S vs their FP16 models (appends to docs/benchmarks.md;
#      INFERENCE_MODELS="deit-small" picks a subset).
# Needs torch with CUDA, cupy (requirements/cuda.txt) and pytest.
#
# Steps 4 and 5 also need mmengine, mmcv-lite and mmpretrain, which the GPU
# machine does not have. They are pure-Python wheels: download them once
# into .whl/ (git-ignored) on a machine with pip access, and carry .whl/ with
# the working tree (device tool: carry=[".whl"], 3.2 MB); this script then
# installs them into a temporary folder. Without them steps 4 and 5 say so
# and measure nothing.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     mmengine==0.10.7 mmcv-lite==2.1.0 mmpretrain==1.2.0 addict==2.4.0 \
#     yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0 \
#     importlib-metadata==10.2.0 lazy-importer==0.1.0 model-index==0.1.11 \
#     ordered-set==4.1.0 mat4py==0.6.0
#
# Usage: tools/gpu_checks.sh [LOG_DIR] [--quick]
#   LOG_DIR (default: $TMPDIR/mmdidb_gpu_checks) receives the logs and a copy of
#   docs/benchmarks.md; --quick runs the short binary-GEMM benchmark.
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

if compgen -G ".whl/*.whl" > /dev/null; then
  SITE=$(mktemp -d)
  python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$SITE" .whl/*.whl \
    && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" \
    || echo "installing .whl/*.whl failed; steps 4-5 may be skipped"
fi
if python -c 'import mmdidb.compat as c; raise SystemExit(0 if c.openmmlab_available() else 1)'; then
  echo "OpenMMLab packages: found (steps 4-5 run)"
else
  echo "OpenMMLab packages: NOT found; steps 4-5 skip (carry .whl/, see the header)"
fi

echo "== 1/5 compile check"
NVRTC_FLAG=""
python -c 'from mmdidb.ops.compile_check import nvrtc_available as f; raise SystemExit(0 if f() else 1)' && NVRTC_FLAG=--nvrtc
timeout 45 python -m mmdidb.ops.compile_check $NVRTC_FLAG 2>&1 | tee "$LOG_DIR/compile_check.log" || status=1

echo "== 2/5 GPU tests of mmdidb.ops"
timeout 150 python -m pytest tests/ops/test_ops_gpu.py -v -p no:cacheprovider 2>&1 \
  | tee "$LOG_DIR/test_ops_gpu.log" || status=1

echo "== 3/5 binary GEMM benchmark"
timeout 120 python tools/benchmark/bgemm.py "${BENCH_ARGS[@]}" 2>&1 \
  | tee "$LOG_DIR/bgemm.log" || status=1

echo "== 4/5 deploy-mode GPU tests"
timeout 60 python -m pytest tests/deploy/test_deploy_gpu.py -v -rs -p no:cacheprovider 2>&1 \
  | tee "$LOG_DIR/test_deploy_gpu.log" || status=1

echo "== 5/5 inference benchmark (quick)"
for model in ${INFERENCE_MODELS:-deit-small swin-tiny binaryvit-small}; do
  timeout 75 python tools/benchmark/inference.py --model "$model" --quick 2>&1 \
    | tee -a "$LOG_DIR/inference.log" || status=1
done
[[ -f docs/benchmarks.md ]] && cp docs/benchmarks.md "$LOG_DIR/benchmarks.md"

echo "== done, status $status (logs in $LOG_DIR)"
exit $status
