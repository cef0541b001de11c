#!/usr/bin/env bash
# Two-stage training (docs/method.md): stage 1 (W32A1), then stage 2
# (W1A1) initialised from stage 1's last checkpoint.
#
# Usage: tools/two_stage_train.sh CONFIG_STAGE1 CONFIG_STAGE2 [GPUS] [train.py options]
#   GPUS (default 1): processes per stage; 1 runs tools/train.py, more run
#   tools/dist_train.sh (gloo processes on a machine without CUDA).
#   Options after GPUS go to both stages (e.g. --cfg-options k=v, --amp).
#   WORK_ROOT (default work_dirs): stage N writes WORK_ROOT/<config name>.
#   To resume an interrupted stage, run tools/train.py on it with --resume.
# Stage 2 gets --cfg-options load_from=<stage 1's last checkpoint>, read from
# the last_checkpoint file mmengine writes in stage 1's work directory.
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
STAGE1=$1
STAGE2=$2
shift 2
GPUS=1
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then
    GPUS=$1
    shift
fi
TOOLS=$(cd "$(dirname "$0")" && pwd)
WORK_ROOT=${WORK_ROOT:-work_dirs}

for config in "$STAGE1" "$STAGE2"; do
    if [ ! -f "$config" ]; then
        echo "two_stage_train.sh: config $config does not exist" >&2
        exit 2
    fi
done
if ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "two_stage_train.sh: GPUS must be a positive number, got $GPUS" >&2
    exit 2
fi

work_dir() {
    local name
    name=$(basename "$1")
    echo "$WORK_ROOT/${name%.py}"
}

train() {  # CONFIG WORK_DIR [options]
    local config=$1 work=$2
    shift 2
    if [ "$GPUS" -gt 1 ]; then
        bash "$TOOLS/dist_train.sh" "$config" "$GPUS" --work-dir "$work" "$@"
    else
        python "$TOOLS/train.py" "$config" --work-dir "$work" "$@"
    fi
}

for arg in "$@"; do
    if [ "$arg" = "--resume" ]; then
        # stage 2's load_from would become the checkpoint to resume from
        echo "two_stage_train.sh: --resume is not supported; resume a stage" \
            "with tools/train.py CONFIG --work-dir WORK_DIR --resume" >&2
        exit 2
    fi
done

WORK1=$(work_dir "$STAGE1")
WORK2=$(work_dir "$STAGE2")
echo "two_stage_train.sh: stage 1 ($STAGE1) -> $WORK1"
train "$STAGE1" "$WORK1" "$@"

if [ ! -f "$WORK1/last_checkpoint" ]; then
    echo "two_stage_train.sh: stage 1 wrote no checkpoint ($WORK1/last_checkpoint)" >&2
    exit 1
fi
CKPT=$(cat "$WORK1/last_checkpoint")
if [ ! -f "$CKPT" ]; then
    echo "two_stage_train.sh: stage 1's last checkpoint $CKPT does not exist" >&2
    exit 1
fi
echo "two_stage_train.sh: stage 2 ($STAGE2) from $CKPT -> $WORK2"
# a later --cfg-options merges with earlier ones (mmengine's DictAction)
train "$STAGE2" "$WORK2" "$@" --cfg-options load_from="$CKPT"
