#!/usr/bin/env bash
# Train with PyTorch DDP on GPUS processes of this node (torchrun, --launcher pytorch).
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py options]
# Several nodes: run it on each with NNODES, NODE_RANK, MASTER_ADDR and PORT set alike.
# Without a GPU the processes train on the CPU over gloo. PYTHON picks the interpreter.
# A killed process or a lost node makes it restart them all, up to MAX_RESTARTS (3) times;
# a restarted run resumes from the latest checkpoint of its work directory by itself. A
# config or data error, or the same error at the same iteration twice, is not restarted:
# one line, exit status 2 (mae_seg/runner/restarts.py).
set -euo pipefail

if [ $# -lt 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash tools/dist_train.sh CONFIG GPUS [train.py options] (GPUS: processes per node)" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
MAX_RESTARTS=${MAX_RESTARTS:-3}
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}"

# Config, checkpoint and data mistakes as one line here, not from every process under torchrun;
# WORLD_SIZE lets the check see the images per process and what SyncBN shares.
WORLD_SIZE=$((NNODES * GPUS)) "$PYTHON" "$TOOLS/train.py" "$CONFIG" --check "${@:3}"
"$PYTHON" -m mae_seg.runner \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --max-restarts="$MAX_RESTARTS" \
    --master_port="$PORT" \
    "$TOOLS/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
