#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py options]
# GPUS processes on this machine (on CPU-only machines: processes, gloo).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
# PORT: the master port. Unset on one node, torchrun binds a free one itself,
# so concurrent jobs never race for a port.

# once, before the workers start: a missing checkpoint or an unreachable
# checkpoint URL fails here, naming the config key to override
python "$(dirname "$0")/misc/check_checkpoints.py" "$CONFIG" "${@:3}" || exit 1

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python "$(dirname "$0")/dist_launch.py" \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    ${PORT:+--master_port="$PORT"} \
    "$(dirname "$0")/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
