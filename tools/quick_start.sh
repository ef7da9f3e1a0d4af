#!/usr/bin/env bash
# Quick start: the whole workflow on a CPU in minutes, nothing downloaded.
#   bash tools/quick_start.sh
# Makes an ADE20K-format shapes data set and a tiny MAE checkpoint in the official layout,
# converts it with mae2mmseg.py, trains MAEViT + UPerNet with tools/dist_train.sh (NPROC
# processes, gloo), tests single-scale and with --tta, and writes into WORK_DIR:
# miou_table.txt, curves.png and overlays/vis_data/vis_image/*.png (ground truth | prediction).
# Settings: WORK_DIR (work_dirs/quick_start), NPROC (2), PYTHON (.venv/bin/python if present).
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
start=$(date +%s)
step() { printf '\n== [%ss] %s\n' "$(($(date +%s) - start))" "$*"; }

rm -rf "$WORK_DIR/data" "$WORK_DIR/train" "$WORK_DIR/test" "$WORK_DIR/test_tta" \
    "$WORK_DIR/overlays"

step '1/6 ADE20K-format data set of coloured shapes'
"$PYTHON" tools/quick_start.py data "$DATA"

step '2/6 tiny MAE checkpoint in the official layout (stands in for the download), converted'
"$PYTHON" tools/quick_start.py checkpoint "$WORK_DIR/pretrain/mae_tiny_official.pth"
"$PYTHON" tools/model_converters/mae2mmseg.py \
    "$WORK_DIR/pretrain/mae_tiny_official.pth" "$PRETRAINED" --force

step "3/6 train on $NPROC processes"
bash tools/dist_train.sh "$CONFIG" "$NPROC" --work-dir "$WORK_DIR/train" \
    --cfg-options "${OPTIONS[@]}"
CHECKPOINT=$(cat "$WORK_DIR/train/last_checkpoint")

step '4/6 test, single scale, painting every prediction'
"$PYTHON" tools/test.py "$CONFIG" "$CHECKPOINT" --work-dir "$WORK_DIR/test" \
    --show-dir "$WORK_DIR/overlays" \
    --cfg-options "${OPTIONS[@]}" default_hooks.visualization.interval=1

step "5/6 test, multi-scale + flip (--tta), on $NPROC processes"
bash tools/dist_test.sh "$CONFIG" "$CHECKPOINT" "$NPROC" --tta --work-dir "$WORK_DIR/test_tta" \
    --cfg-options "${OPTIONS[@]}"

step '6/6 report'
"$PYTHON" tools/quick_start.py report "$WORK_DIR"
echo "tables: $WORK_DIR/miou_table.txt  curves: $WORK_DIR/curves.png"
echo "overlays: $WORK_DIR/overlays/vis_data/vis_image/"
echo "quick start finished in $(($(date +%s) - start)) s"
