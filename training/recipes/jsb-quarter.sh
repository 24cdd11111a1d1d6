#!/usr/bin/env bash
# The shipped jsb-quarter style, from the JSB train split alone: four LSTMs 2x384. Three share one recipe
# (seeds differ; one trades some dropout for DropConnect on the recurrent weights), the fourth is trained
# in all keys (±6 semitones) and told each piece's transposition (--shift-input). `antiphon train`
# calibrates each and gives it its session memory on valid; `antiphon ensemble --views 1` also hears each
# model a semitone down and up, keeps the six members (views included) that mix best on valid, fits
# their weights and the mixture's temperature there. Each member's --patience reproduces where its run
# was stopped. On this 2-core CPU an epoch takes 33-40 s on one core with another run on the other
# (55-75 s on a busier day): 20-45 minutes a member, about 80 minutes for the four two at a time, then
# 4 minutes for the ensemble.
# Usage: training/recipes/jsb-quarter.sh [JSB_JSON] [OUT_DIR]
set -euo pipefail
JSON=${1:-../shared/benchmarks/jsb/jsb-chorales-quarter.trainvalid.json}
OUT=${2:-runs}
DATA=jsb-quarter:$JSON
mkdir -p "$OUT"
COMMON=(--name jsb-quarter --embed 192 --hidden 384 --layers 2 --sounding-input --interval-head --interval-roles
        --embed-dropout 0.1 --weight-decay 0.1 --batch-size 1 --seq-len 768 --ema 0.998 --lr 3e-3 --threads 1)
member() {  # name, then that member's own flags
  local name=$1; shift
  antiphon train "$DATA" --out "$OUT/$name.style" "${COMMON[@]}" "$@" > "$OUT/$name.log" 2>&1
}
member R  --transpose 1 --dropout 0.5 --epochs 90 --patience 8 --seed 0 &
member r3 --transpose 1 --dropout 0.5 --epochs 90 --patience 6 --seed 3 &
wait
member wd --transpose 1 --dropout 0.4 --weight-drop 0.3 --epochs 90 --patience 2 --seed 4 &
member k6 --transpose 6 --shift-input --dropout 0.4 --epochs 80 --patience 8 --seed 6 &
wait
antiphon ensemble "$OUT"/{R,r3,wd,k6}.style --views 1 --max-members 6 --data "$DATA" \
    --out engine/styles/jsb-quarter.style --name jsb-quarter
antiphon eval --style jsb-quarter --data "$DATA" --split valid --json
