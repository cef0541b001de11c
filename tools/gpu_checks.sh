#!/usr/bin/env bash
# GPU checks of mmdidb, in one go (about 8-9 minutes on an H100/H200;
# the per-step timeouts bound each step). Most important first, so a run cut
# short still returns the key results:
#   1. every csrc/*.cu compiles for sm_80, sm_90 and sm_90a (nvcc, and NVRTC
#      if CuPy is installed); the wgmma cubin builds, and its SASS is listed
#      (GMMA instructions present?);
#   2. all GPU tests in one pytest run: the kernels (mma / popc / packing,
#      the fused sign-shift+pack and scale+bias epilogue, wgmma b1 with
#      partly filled last stages), the deploy mode on CUDA, the CUDA-graph
#      runtime (captured == eager bit for bit, DIDBSwin's shifted windows
#      included, shape fallback), the fused deployed model,
#      tools/test.py --cuda-graph on a deploy checkpoint, and torch.compile
#      of a DIDB-ViT training graph (Triton) vs eager;
#   3. mma.sync b1 vs wgmma b1 vs cuBLAS FP16 microbenchmark (kernel times
#      from CUDA-graph replays, plus the wgmma descriptor-layout probe);
#   4. the inference benchmark with CUDA graphs: DeiT-S, Swin-T and
#      BinaryViT-S deployed (plain and fused) vs their FP16 models, batch 1
#      and 64, all in the same run (INFERENCE_MODELS="deit-small" picks a
#      subset);
#   5. the training step (forward + backward + AdamW, at most 2x
#      the FP step): DIDB-ViT DeiT-S vs FP DeiT-S, batch 64, in the FP config's
#      precision (FP32: its optim_wrapper has no AMP), eager and with each
#      block torch.compile'd (about 60-80 s, capped at 90), then both
#      eager under BF16 autocast (about 15 s, capped at 30);
#   6. the profile of one deployed DeiT-S block (torch.profiler + CUDA
#      events: kernel time vs launches, allocation, CuPy hand-over, Python),
#      batch 64 and 1;
#   7. the binary-GEMM table (DeiT-S, batch 64) with the fused-layer columns.
# Steps 3-7 append to docs/benchmarks.md, copied to LOG_DIR after each step.
# Needs torch with CUDA, cupy (requirements/cuda.txt), pytest and nvcc.
#
# Steps 2 (partly) and 4-6 also need mmengine, mmcv-lite and mmpretrain,
# which the GPU machine does not have. They are pure-Python wheels: download
# them once into .whl/ (git-ignored) on a machine with pip access, and carry
# .whl/ with the working tree (device tool: carry=[".whl"], 3.2 MB); this
# script then installs them into a temporary folder. Without them those
# steps say so and measure nothing.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl \
#     mmengine==0.10.7 mmcv-lite==2.1.0 mmpretrain==1.2.0 addict==2.4.0 \
#     yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0 \
#     importlib-metadata==10.2.0 lazy-importer==0.1.0 model-index==0.1.11 \
#     ordered-set==4.1.0 mat4py==0.6.0
#
# On the device machine (one call; at most 8 files come back, this writes 8):
#   run(command='set -o pipefail; bash tools/gpu_checks.sh $OUT 2>&1 | tee $OUT/gpu_checks.log',
#       carry=['.whl'], timeout_s=570)
#
# Usage: tools/gpu_checks.sh [LOG_DIR]
#   LOG_DIR (default: $TMPDIR/mmdidb_gpu_checks) receives one log per step
#   and a copy of docs/benchmarks.md.
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG_DIR=${1:-${TMPDIR:-/tmp}/mmdidb_gpu_checks}
mkdir -p "$LOG_DIR"
export PYTHONUNBUFFERED=1 MMDIDB_OPS_STRICT=1
# the sm_90a cubin cache stays out of LOG_DIR (only 8 files come back)
export MMDIDB_CUBIN_DIR=${MMDIDB_CUBIN_DIR:-${TMPDIR:-/tmp}/mmdidb_cubin}
status=0
START=$SECONDS
step() { echo; echo "== $1 (t=$((SECONDS - START)) s)"; }
save_benchmarks() { [[ -f docs/benchmarks.md ]] && cp docs/benchmarks.md "$LOG_DIR/benchmarks.md"; }

echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo unknown)"
python -c 'import torch, cupy; print("torch", torch.__version__, "cuda", torch.version.cuda, "cupy", cupy.__version__, "sm", torch.cuda.get_device_capability())' \
  || { echo "torch with CUDA and cupy are required"; exit 2; }
nvcc --version 2>/dev/null | tail -1 || echo "nvcc: not found (the wgmma cubin cannot be built)"

source tools/gpu_env.sh

step "1/7 compile check (nvcc sm_80/sm_90/sm_90a, NVRTC) and the wgmma cubin"
{
  NVRTC_FLAG=""
  python -c 'from mmdidb.ops.compile_check import nvrtc_available as f; raise SystemExit(0 if f() else 1)' && NVRTC_FLAG=--nvrtc
  timeout 90 python -m mmdidb.ops.compile_check $NVRTC_FLAG || status=1
  CUBIN=$(timeout 60 python -c 'from mmdidb.ops import wgmma; print(wgmma.build_cubin())') || status=1
  echo "wgmma cubin: ${CUBIN:-none}"
  if [[ -n "${CUBIN:-}" ]] && command -v cuobjdump > /dev/null; then
    echo "SASS tensor-core instructions in the wgmma cubin:"
    cuobjdump -sass "$CUBIN" | grep -oE '\b[A-Z]*GMMA[A-Z0-9._]*|\bBMMA[A-Z0-9._]*' | sort | uniq -c
  fi
} > >(tee "$LOG_DIR/compile_check.log") 2>&1
sleep 1  # let tee flush before the next step prints

step "2/7 GPU tests (ops, fused, wgmma, deploy, CUDA graphs, tools/test.py --cuda-graph, torch.compile)"
# four processes, so that a kernel fault (a sticky CUDA error) in the new
# fused or wgmma kernels cannot fail the tests that run after it
PYTEST=(python -m pytest -q -rs -p no:cacheprovider --durations=8)
timeout 150 "${PYTEST[@]}" tests/ops/test_ops_gpu.py tests/ops/test_ops_fused.py \
  2>&1 | tee "$LOG_DIR/tests.log" || status=1
timeout 60 "${PYTEST[@]}" tests/ops/test_ops_wgmma.py \
  2>&1 | tee -a "$LOG_DIR/tests.log" || status=1
timeout 200 "${PYTEST[@]}" tests/deploy/test_graph_runtime.py \
  tests/deploy/test_deploy_gpu.py tests/deploy/test_deploy_fused.py \
  "tests/deploy/test_deploy_tools.py::test_tools_test_with_cuda_graph_equals_eager" \
  2>&1 | tee -a "$LOG_DIR/tests.log" || status=1
# torch.compile (Triton) of a 1-layer DIDB-ViT training graph equals eager
timeout 90 "${PYTEST[@]}" \
  "tests/models/test_compile.py::test_compiled_training_graph_equals_eager[cuda]" \
  2>&1 | tee -a "$LOG_DIR/tests.log" || status=1

step "3/7 mma.sync b1 vs wgmma b1 vs cuBLAS FP16 (kernel times)"
timeout 90 python tools/benchmark/bgemm.py --hopper only --repeats 5 2>&1 \
  | tee "$LOG_DIR/bgemm.log" || status=1
save_benchmarks

step "4/7 inference with CUDA graphs vs FP16 (batch 1 and 64)"
for model in ${INFERENCE_MODELS:-deit-small swin-tiny binaryvit-small}; do
  timeout 100 python tools/benchmark/inference.py --model "$model" --quick \
    --cuda-graph only 2>&1 | tee -a "$LOG_DIR/inference.log" || status=1
  save_benchmarks
done

step "5/7 training step on the GPU: DIDB-ViT DeiT-S vs FP DeiT-S, batch 64, FP32 (the FP config's) eager + compiled, BF16 eager"
# 120 s at most (85 + 25, each +5 before SIGKILL); on SIGTERM the script
# still reports and appends the rows it has
timeout -k 5 85 python tools/benchmark/train_step_gpu.py --model deit-small \
  --batch 64 --amp auto --compile on --warmup 2 --steps 6 2>&1 \
  | tee "$LOG_DIR/train_step.log" || status=1
save_benchmarks
timeout -k 5 25 python tools/benchmark/train_step_gpu.py --model deit-small \
  --batch 64 --amp bf16 --warmup 2 --steps 6 2>&1 \
  | tee -a "$LOG_DIR/train_step.log" || status=1
save_benchmarks

step "6/7 profile of one deployed DeiT-S block"
for batch in 64 1; do
  timeout 60 python tools/benchmark/profile_block.py --model deit-small \
    --batch "$batch" 2>&1 | tee -a "$LOG_DIR/profile.log" || status=1
done
save_benchmarks

step "7/7 binary GEMM table, DeiT-S batch 64, fused-layer columns"
timeout 90 python tools/benchmark/bgemm.py --hopper off --quick --batches 64 \
  --models DeiT-Small 2>&1 | tee -a "$LOG_DIR/bgemm.log" || status=1
save_benchmarks

echo "== done in $((SECONDS - START)) s, status $status (logs in $LOG_DIR)"
exit $status
