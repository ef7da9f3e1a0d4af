#!/usr/bin/env bash
# Every GPU figure of docs/performance.md in one run: the CUDA tests, the attention paths, and the
# benchmark of ViT-B and ViT-L backbones (batch 2 and 4, compiled too) and of the ViT-B
# UPerNet segmentor, each against mmseg's MAE in the same process.
#
#   bash tools/analysis/gpu_figures.sh OUT_DIR [STEP ...]
#
# STEPs (default: all, in this order): env tests attention vit-b vit-b-train4 vit-l
# vit-l-train4 segmentor scaling. Only vit-b and vit-b-train4 time the compiled model too
# (each compilation takes minutes); scaling is ViT-B whole-image inference from 512x512 to
# 2048x2048 on the inference path and on the dense-bias path (plot: OUT_DIR/scaling.png).
#
# Writes OUT_DIR/gpu_figures.txt (the tables, in the order run) and OUT_DIR/progress.txt
# (what each step printed while running). A step that fails or runs past its time limit is
# reported and the next one runs; the exit status is the number of such steps.
# Run it after tools/setup_env.sh, from any directory. PY: interpreter (default .venv's).
# STEP_TIMEOUT: seconds per step (default 300).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
STEP_TIMEOUT=${STEP_TIMEOUT:-300}
ALL_STEPS=(env tests attention vit-b vit-b-train4 vit-l vit-l-train4 segmentor scaling)
[[ -n ${1:-} ]] || { echo "usage: gpu_figures.sh OUT_DIR [${ALL_STEPS[*]}]" >&2; exit 2; }
OUT_DIR=$1
shift
STEPS=("$@")
[[ ${#STEPS[@]} -gt 0 ]] || STEPS=("${ALL_STEPS[@]}")
for step in "${STEPS[@]}"; do
  [[ " ${ALL_STEPS[*]} " == *" $step "* ]] \
    || { echo "gpu_figures: unknown step '$step' (steps: ${ALL_STEPS[*]})" >&2; exit 2; }
done
mkdir -p "$OUT_DIR" || { echo "gpu_figures: cannot create $OUT_DIR" >&2; exit 2; }
REPORT=$OUT_DIR/gpu_figures.txt
PROGRESS=$OUT_DIR/progress.txt
: >"$REPORT"
: >"$PROGRESS"
"$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' \
  || { echo "gpu_figures: $PY sees no CUDA device" >&2; exit 2; }

failed=0
run_step() {
  local title=$1
  shift
  local start=$SECONDS
  printf '\n== %s\n$ %s\n' "$title" "$*" | tee -a "$REPORT" >>"$PROGRESS"
  (cd "$ROOT" && PYTHONUNBUFFERED=1 timeout "$STEP_TIMEOUT" "$@") >>"$REPORT" 2>>"$PROGRESS"
  local status=$?
  if [[ $status -ne 0 ]]; then
    failed=$((failed + 1))
    echo "(step failed with exit status $status; 124: past its ${STEP_TIMEOUT}s limit)" \
      | tee -a "$REPORT" >>"$PROGRESS"
  fi
  echo "== $title: $((SECONDS - start)) s" | tee -a "$PROGRESS" >&2
}

BENCH=("$PY" tools/analysis/benchmark.py --device cuda --rounds 10 --warmup 3)
for step in "${STEPS[@]}"; do
  case $step in
    env)
      run_step 'environment' bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version \
        --format=csv; $PY -c 'import torch, mmseg, mmcv, mae_seg; print(torch.__version__, \
        torch.version.cuda, mmseg.__version__, mmcv.__version__, mae_seg.__version__)'" ;;
    tests)
      run_step 'CUDA tests' "$PY" -m pytest -m cuda -q -rA -p no:cacheprovider ;;
    attention)
      run_step 'attention paths' "$PY" tools/analysis/attention_paths.py --device cuda \
        --arch vit-b vit-l --batch 2 4 --dtype fp16 bf16 ;;
    vit-b)
      run_step 'ViT-B backbone, batch 2 and 4' "${BENCH[@]}" --arch vit-b --batch 2 4 \
        --train-batch 2 --compile ;;
    vit-b-train4)
      run_step 'ViT-B backbone, training at batch 4' "${BENCH[@]}" --arch vit-b \
        --train-batch 4 --cases 'train-*' --compile ;;
    vit-l)
      run_step 'ViT-L backbone, batch 2 and 4' "${BENCH[@]}" --arch vit-l --batch 2 4 \
        --train-batch 2 --cases '*-amp' ;;
    vit-l-train4)
      run_step 'ViT-L backbone, training at batch 4' "${BENCH[@]}" --arch vit-l \
        --train-batch 4 --cases 'train-*-amp' ;;
    segmentor)
      run_step 'ViT-B UPerNet segmentor' "${BENCH[@]}" --mode segmentor --arch vit-b \
        --batch 2 --train-batch 2 --cases '*-amp' whole-vs-slide ;;
    scaling)
      run_step 'ViT-B whole-image inference, 512x512 to 2048x2048' "${BENCH[@]}" --arch vit-b \
        --cases whole-image-scaling --scaling-sizes 512 1024 1024x2048 2048 \
        --plot "$OUT_DIR/scaling.png" ;;
  esac
done

echo "gpu_figures: $failed step(s) failed; tables in $REPORT" >&2
exit "$failed"
