#!/usr/bin/env bash
# The shipped jsb-quarter style, from the JSB train split alone: three LSTMs 2x384 of one recipe (seeds
# differ, one trades some dropout for DropConnect on the recurrent weights), each calibrated and given
# its session memory on valid by `antiphon train`, then mixed by `antiphon ensemble` with weights fit on
# valid. Each member's --patience reproduces where its run was stopped. About 35-45 min a member on one
# core of this 2-core CPU (55-75 s an epoch with two runs side by side).
# Usage: training/recipes/jsb-quarter.sh [JSB_JSON] [OUT_DIR]
set -euo pipefail
JSON=${1:-../shared/benchmarks/jsb/jsb-chorales-quarter.trainvalid.json}
OUT=${2:-runs}
DATA=jsb-quarter:$JSON
mkdir -p "$OUT"
COMMON=(--name jsb-quarter --embed 192 --hidden 384 --layers 2 --sounding-input --interval-head --interval-roles
        --embed-dropout 0.1 --weight-decay 0.1 --batch-size 1 --seq-len 768 --transpose 1 --ema 0.998 --lr 3e-3
        --threads 1)
member() {  # name, then that member's own flags
  local name=$1; shift
  antiphon train "$DATA" --out "$OUT/$name.style" "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1
}
member R  --dropout 0.5 --epochs 90 --patience 8 --seed 0 &
member r3 --dropout 0.5 --epochs 90 --patience 6 --seed 3 &
wait
member wd --dropout 0.4 --weight-drop 0.3 --epochs 90 --patience 2 --seed 4
antiphon ensemble "$OUT"/{R,r3,wd}.style --data "$DATA" --out engine/styles/jsb-quarter.style --name jsb-quarter
antiphon eval --style jsb-quarter --data "$DATA" --split valid --json
