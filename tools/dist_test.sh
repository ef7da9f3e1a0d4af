#!/usr/bin/env bash
# Test with GPUS processes of this node (torchrun, --launcher pytorch).
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py options, e.g. --tta]
# Several nodes: run it on each with NNODES, NODE_RANK, MASTER_ADDR and PORT set alike.
# Without a GPU the processes run on the CPU over gloo. PYTHON picks the interpreter.
set -euo pipefail

if [ $# -lt 3 ] || ! [[ $3 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options] (GPUS: processes per node)" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}"

# Config, checkpoint and data mistakes as one line here, not from every process under torchrun.
"$PYTHON" "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --check "${@:4}"
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
