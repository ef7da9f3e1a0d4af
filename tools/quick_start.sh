#!/usr/bin/env bash
# Quick start: the whole workflow on a CPU in minutes, nothing downloaded.
#   bash tools/quick_start.sh
# Makes an ADE20K-format shapes data set and a tiny MAE checkpoint in the official layout,
# converts it with mae2mmseg.py, trains MAEViT + UPerNet with tools/dist_train.sh (NPROC
# processes, gloo), tests single-scale and with --tta, and writes into WORK_DIR:
# miou_table.txt, curves.png and overlays/vis_data/vis_image/*.png (ground truth | prediction).
# Settings: WORK_DIR (work_dirs/quick_start), NPROC (2), PYTHON (.venv/bin/python if present).
# The terminal gets each step's progress and results; WORK_DIR/logs/<step>.log the full output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHON
# One thread a process: the machine's cores are shared, and spinning OpenMP threads that wait
# on each other slow a small model down many times over.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# torchrun's rendezvous port; a random one keeps two quick starts on one machine apart.
export PORT=${PORT:-$((29500 + RANDOM % 2000))}
WORK_DIR=${WORK_DIR:-work_dirs/quick_start}
NPROC=${NPROC:-2}
CONFIG=configs/quick_start/mae-tiny_upernet_2xb4-400_shapes-128x128.py
DATA=$WORK_DIR/data/ADEChallengeData2016
PRETRAINED=$WORK_DIR/pretrain/mae_tiny_mmseg.pth
OPTIONS=(
    "train_dataloader.dataset.data_root=$DATA"
    "val_dataloader.dataset.data_root=$DATA"
    "test_dataloader.dataset.data_root=$DATA"
    "model.pretrained=$PRETRAINED"
)
LOGS=$WORK_DIR/logs
start=$(date +%s)
step() { printf '\n== [%ss] %s\n' "$(($(date +%s) - start))" "$*"; }

# run LOG PATTERN COMMAND...: the whole output of COMMAND into LOG, the lines matching the
# extended regex PATTERN onto the terminal; on failure, the end of LOG and where it is.
run() {
    local log=$LOGS/$1 pattern=$2
    shift 2
    if ! "$@" 2>&1 | tee "$log" | { grep --line-buffered -E "$pattern" || true; }; then
        echo "-- failed; the last lines of $log:" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}
# mmengine's progress (every 100th training iteration), validation and test results.
TRAIN_LINES='Iter\(train\) \[ *[0-9]*00/|Iter\(val\) .*mIoU'
TEST_LINES='Iter\(test\) |^\| *[A-Za-z_]+ *\||^\+-|^\| *Class'

rm -rf "$WORK_DIR/data" "$WORK_DIR/train" "$WORK_DIR/test" "$WORK_DIR/test_tta" \
    "$WORK_DIR/overlays" "$LOGS"
mkdir -p "$LOGS"

step '1/6 ADE20K-format data set of coloured shapes'
run data.log '.' "$PYTHON" tools/quick_start.py data "$DATA"

step '2/6 tiny MAE checkpoint in the official layout (stands in for the download), converted'
run checkpoint.log '.' "$PYTHON" tools/quick_start.py checkpoint \
    "$WORK_DIR/pretrain/mae_tiny_official.pth"
run convert.log '.' "$PYTHON" tools/model_converters/mae2mmseg.py \
    "$WORK_DIR/pretrain/mae_tiny_official.pth" "$PRETRAINED" --force

step "3/6 train on $NPROC processes (log: $LOGS/train.log)"
run train.log "$TRAIN_LINES" bash tools/dist_train.sh "$CONFIG" "$NPROC" \
    --work-dir "$WORK_DIR/train" --cfg-options "${OPTIONS[@]}"
CHECKPOINT=$(cat "$WORK_DIR/train/last_checkpoint")

step "4/6 test, single scale, painting every prediction (log: $LOGS/test.log)"
run test.log "$TEST_LINES" "$PYTHON" tools/test.py "$CONFIG" "$CHECKPOINT" \
    --work-dir "$WORK_DIR/test" --show-dir "$WORK_DIR/overlays" \
    --cfg-options "${OPTIONS[@]}" default_hooks.visualization.interval=1 \
    default_hooks.logger.interval=4

step "5/6 test, multi-scale + flip (--tta), on $NPROC processes (log: $LOGS/test_tta.log)"
run test_tta.log "$TEST_LINES" bash tools/dist_test.sh "$CONFIG" "$CHECKPOINT" "$NPROC" --tta \
    --work-dir "$WORK_DIR/test_tta" --cfg-options "${OPTIONS[@]}" default_hooks.logger.interval=4

step '6/6 report'
run report.log '.' "$PYTHON" tools/quick_start.py report "$WORK_DIR"
echo "tables: $WORK_DIR/miou_table.txt  curves: $WORK_DIR/curves.png"
echo "overlays: $WORK_DIR/overlays/vis_data/vis_image/"
echo "quick start finished in $(($(date +%s) - start)) s"
