#!/usr/bin/env bash
# Issue 12's ablation family on the 14x14 token grid (patch 2, DeiT's 196
# tokens), on the GPU machine, in one device call after tools/gpu_checks.sh.
# On 2 CPU cores one such run would take about an hour; on the GPU the six
# variants of a seed train side by side (one process each), seed after
# seed, so a call cut short still returns whole seeds.
#
# Carry the OpenMMLab wheels and a copy of Fashion-MNIST (30 MB; data/ is
# git-ignored):
#   mkdir -p data && cp -r /usr/share/datasets/fashion-mnist data/
#   run(command='bash tools/gpu_ablation_grid14.sh $OUT 2>&1 | tail -60',
#       carry=['.whl', 'data/fashion-mnist'], timeout_s=570)
# Then, on this machine, take the results and redraw:
#   cp FILES_AT/ablation_results.json docs/ablation_results.json
#   python tools/benchmark/ablation_fashion_mnist.py --table-only --grid 14
#   python tools/analysis/plot_ablation.py --grid 14
#
# Environment (defaults in brackets): GRID [14], EPOCHS [4], SEEDS ["0 1 2"],
# VARIANTS [the family: d_only no_diba d_only_no_hfsc d_only_no_irprelu naive
# fp], BUDGET_S [520: no run starts after it, running ones are stopped],
# DATA [data/fashion-mnist], REQUIRE_CUDA [1; 0 lets the script run on a CPU
# machine, for a smoke test with a small GRID and EPOCHS].
#
# Usage: tools/gpu_ablation_grid14.sh [OUT_DIR]
#   OUT_DIR receives ablation_results.json (the repository's results plus
#   the new runs), benchmarks.md (with the grid's table) and grid.log (the
#   tail of every run's log): three files, within the device tool's limit.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${TMPDIR:-/tmp}/mmdidb_grid14}
GRID=${GRID:-14}
EPOCHS=${EPOCHS:-4}
SEEDS=${SEEDS:-0 1 2}
VARIANTS=${VARIANTS:-d_only no_diba d_only_no_hfsc d_only_no_irprelu naive fp}
BUDGET_S=${BUDGET_S:-520}
DATA=${DATA:-data/fashion-mnist}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
START=$SECONDS

if [[ ${REQUIRE_CUDA:-1} == 1 ]]; then
  python -c 'import torch; raise SystemExit(0 if torch.cuda.is_available() else 1)' \
    || { echo "no CUDA device (REQUIRE_CUDA=0 runs on the CPU)"; exit 2; }
fi
[[ -f $DATA/train-images-idx3-ubyte.gz || -f $DATA/train-images-idx3-ubyte ]] \
  || { echo "no Fashion-MNIST in DATA=$DATA: carry data/fashion-mnist (see the header)"; exit 2; }
source tools/gpu_env.sh
[[ $OPENMMLAB_FOUND == 1 ]] || exit 2

RESULTS=$OUT_DIR/ablation_results.json
cp docs/ablation_results.json "$RESULTS"
cp docs/benchmarks.md "$OUT_DIR/benchmarks.md"
# the parallel runs write their tables to scratch files; the one table
# goes to OUT_DIR at the end, from the results of all of them
LOGS=$(mktemp -d)
for seed in $SEEDS; do
  left=$((BUDGET_S - (SECONDS - START)))
  if (( left < 30 )); then
    echo "budget spent before seed $seed"
    break
  fi
  echo "== seed $seed: ${VARIANTS} (t=$((SECONDS - START)) s, ${left} s left)"
  for variant in $VARIANTS; do
    timeout "$left" python tools/benchmark/ablation_fashion_mnist.py \
      --grid "$GRID" --epochs "$EPOCHS" --seeds "$seed" --variants "$variant" \
      --results "$RESULTS" --output "$LOGS/${variant}_s${seed}.md" \
      --data-prefix "$DATA" --work-dir "$LOGS/work_dirs" \
      > "$LOGS/${variant}_s${seed}.log" 2>&1 &
  done
  wait
  for variant in $VARIANTS; do
    echo "-- $(grep -E 'top-1 [0-9.]+$' "$LOGS/${variant}_s${seed}.log" | tail -1 || echo "$variant seed $seed: no result")"
  done
done
for log in "$LOGS"/*.log; do
  echo "===== $(basename "$log")"
  grep -vE 'mmdidb.compat|Epoch\(train\)|paramwise_options|^\|' "$log" | tail -12
done > "$OUT_DIR/grid.log"
echo "== done in $((SECONDS - START)) s"
python tools/benchmark/ablation_fashion_mnist.py --table-only --grid "$GRID" \
  --epochs "$EPOCHS" --results "$RESULTS" --output "$OUT_DIR/benchmarks.md" \
  --note "Trained by tools/gpu_ablation_grid14.sh: the variants of a seed side by side, one process each, OMP_NUM_THREADS=1." \
  2>/dev/null | grep -F '|'
