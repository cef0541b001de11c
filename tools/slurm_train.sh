#!/usr/bin/env bash
# Usage: [GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options]
# As mmseg's and mmpretrain's: one srun task per GPU, --launcher slurm. The
# optional WORK_DIR (mmpretrain's 4th argument) becomes --work-dir; mmseg's
# form passes --work-dir among the options instead.
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [[ $# -gt 0 && "$1" != -* ]]; then
    WORK_DIR_ARGS=(--work-dir="$1")
    shift
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
TOOLS="$(dirname "$0")"

# once, on the submitting node: a missing checkpoint or an unreachable
# checkpoint URL fails here, naming the config key to override
python "$TOOLS/misc/check_checkpoints.py" "$CONFIG" "$@" || exit 1

# shellcheck disable=SC2086  # SRUN_ARGS holds several words
PYTHONPATH="$TOOLS/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    python -u "$TOOLS/train.py" "$CONFIG" "${WORK_DIR_ARGS[@]}" \
    --launcher=slurm "$@"
