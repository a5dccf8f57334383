#!/usr/bin/env bash
# The main job on the bundled sample: raw HH-shaped file -> canonical dataset -> checked -> phase split -> data card.
# Every step is a plain `prefdata` command; run them one by one to see what each does.
set -euo pipefail
OUT=${1:-sample-out}
run() { echo "+ $*" >&2; "$@"; }

run prefdata import --sample --out "$OUT/raw" --overwrite
run prefdata validate "$OUT/raw"
run prefdata split "$OUT/raw" --ratio 6,2,2 --eval-fraction 0.1 --seed 1234 --out "$OUT/split" --overwrite
run prefdata validate "$OUT/split"
run prefdata stats "$OUT/split"
run prefdata export "$OUT/split" --format trl --out "$OUT/export-trl" --overwrite
echo "done: dataset in $OUT/split, data card in $OUT/split/README.md" >&2
