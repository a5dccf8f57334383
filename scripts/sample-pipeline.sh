#!/usr/bin/env bash
# The main job on the bundled sample, on CPU, in about a minute: raw HH-shaped file -> canonical dataset -> checked ->
# phase split -> data card -> TRL export -> SFT -> reward model -> PPO actor, and DPO on the same pairs (tiny models built from a config, a
# tokenizer trained on the data: nothing is downloaded). Every step is a plain `prefdata` command.
set -euo pipefail
OUT=${1:-sample-out}
export PREFDATA_HOME=${PREFDATA_HOME:-$OUT/cache}   # prefdata state; the trainers' token cache is $PREFDATA_HOME/tokens
run() { echo "+ $*" >&2; "$@"; }

run prefdata import --sample --out "$OUT/raw" --overwrite
run prefdata validate "$OUT/raw"
run prefdata split "$OUT/raw" --ratio 6,2,2 --eval-fraction 0.1 --seed 1234 --out "$OUT/split" --overwrite
run prefdata validate "$OUT/split"
run prefdata stats "$OUT/split"
run prefdata export "$OUT/split" --format trl --out "$OUT/export-trl" --overwrite

rm -rf "$OUT/tok" "$OUT/sft" "$OUT/rm" "$OUT/ppo" "$OUT/dpo"   # the trainers write a fresh checkpoint directory each run
run prefdata train tokenizer --data "$OUT/split" --out "$OUT/tok" --vocab-size 2000 --quiet
run prefdata train sft --data "$OUT/split" --model tiny-gpt2 --tokenizer "$OUT/tok" --out "$OUT/sft" \
    --dtype fp32 --zero-stage 0 --lr 2e-3 --epochs 2 --micro-batch-size 16 --quiet
run prefdata train reward --data "$OUT/split" --model "$OUT/sft" --out "$OUT/rm" \
    --dtype fp32 --lr 1e-3 --epochs 2 --micro-batch-size 16 --quiet
run prefdata train ppo --data "$OUT/split" --model "$OUT/sft" --reward-model "$OUT/rm" --out "$OUT/ppo" \
    --dtype fp32 --lr 1e-4 --micro-batch-size 8 --max-steps 4 --max-new-tokens 16 --quiet
run prefdata train dpo --data "$OUT/split" --model "$OUT/sft" --out "$OUT/dpo" \
    --dtype fp32 --lr 1e-3 --epochs 2 --micro-batch-size 8 --quiet
echo "done: dataset in $OUT/split (data card $OUT/split/README.md), PPO actor in $OUT/ppo, DPO policy in $OUT/dpo" >&2
