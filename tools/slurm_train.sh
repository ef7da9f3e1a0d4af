#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU (--launcher slurm).
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]
# CPUS_PER_TASK and SRUN_ARGS pass through to srun; PYTHON picks the interpreter.
# Preemptible partitions: REQUEUE=1 submits a batch job (sbatch --requeue) instead, which Slurm
# queues again when it is preempted or a node fails; the requeued job resumes from the latest
# checkpoint of its work directory by itself (train.py reads SLURM_RESTART_COUNT). Slurm does not
# requeue a job that failed by itself: a config or data error ends it with one line a task and
# exit status 2, and a requeued run that meets the same exception at the same iteration again
# stops the same way.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
PYTHON=${PYTHON:-python}
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${REQUEUE:-0}" = 1 ]; then
    # shellcheck disable=SC2086  # SRUN_ARGS holds several srun options
    job=$(printf '%q ' env PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
        srun --kill-on-bad-exit=1 $SRUN_ARGS \
        "$PYTHON" -u "$TOOLS/train.py" "$CONFIG" --launcher slurm "${@:4}")
    set -x
    exec sbatch -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --requeue \
        --open-mode=append \
        --output="slurm-$JOB_NAME-%j.out" \
        --wrap="$job"
fi

set -x
# shellcheck disable=SC2086  # SRUN_ARGS holds several srun options
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    $SRUN_ARGS \
    "$PYTHON" -u "$TOOLS/train.py" "$CONFIG" --launcher slurm "${@:4}"
