#!/usr/bin/env bash
# The InstructGPT phase-2 loop on the bundled sample, on CPU, with tiny models (nothing downloaded):
#   1. SFT (and a first reward model) on the sample, as scripts/sample-pipeline.sh does;
#   2. serve the SFT checkpoint through an OpenAI-compatible server (`transformers serve`; the checkpoint carries the
#      chat template of the trainers' dschat rendering);
#   3. generate K=4 answers per ppo_train prompt from it;
#   4. rank them with the trained reward model (best-of-N needs no judge server);
#   5. split the ranked answers into reward-model pairs (InstructGPT: every two answers of a prompt);
#   6. train the reward model again, on these on-policy pairs.
# `transformers serve` needs the serving extra: pip install 'transformers[serving]' (FastAPI + Uvicorn).
# Usage: scripts/loop.sh [OUT] ; PORT=8765 by default.
set -euo pipefail
OUT=${1:-loop-out}
PORT=${PORT:-8765}
K=${K:-4}
export PREFDATA_HOME=${PREFDATA_HOME:-$OUT/cache}
run() { echo "+ $*" >&2; "$@"; }

# 1. Data, SFT and a first reward model.
run prefdata import --sample --out "$OUT/raw" --overwrite
run prefdata split "$OUT/raw" --ratio 6,2,2 --eval-fraction 0.1 --seed 1234 --out "$OUT/split" --overwrite
rm -rf "$OUT/tok" "$OUT/sft" "$OUT/rm" "$OUT/rm2"   # the trainers write a fresh checkpoint directory each run
run prefdata train tokenizer --data "$OUT/split" --out "$OUT/tok" --vocab-size 2000 --quiet
run prefdata train sft --data "$OUT/split" --model tiny-gpt2 --tokenizer "$OUT/tok" --out "$OUT/sft" \
    --dtype fp32 --zero-stage 0 --lr 2e-3 --epochs 4 --micro-batch-size 16 --quiet
run prefdata train reward --data "$OUT/split" --model "$OUT/sft" --out "$OUT/rm" \
    --dtype fp32 --lr 1e-3 --epochs 2 --micro-batch-size 16 --quiet

# 2. Serve the SFT checkpoint. It carries the chat template of the dschat rendering it trained on (every prefdata
#    checkpoint saves its run's template; trainers/components/chat_template.py), and its
#    generation config must ask for sampling: without `do_sample`, `transformers serve` decodes greedily and ignores
#    the per-request seed and temperature, so the K answers come out identical (and `generate` keeps only one).
python - "$OUT/sft/generation_config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
json.dump({**config, "do_sample": True}, open(sys.argv[1], "w"), indent=2)
PY
echo "+ transformers serve $OUT/sft --port $PORT (in the background)" >&2
transformers serve "$OUT/sft" --host 127.0.0.1 --port "$PORT" --device cpu --log-level warning > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 120); do   # model loading takes a few seconds on CPU
    curl -sf "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && break
    kill -0 $SERVER 2>/dev/null || { cat "$OUT/serve.log" >&2; echo "transformers serve did not start" >&2; exit 1; }
    sleep 1
done

# 3. K answers per prompt of ppo_train from the served policy (its name = the checkpoint path it serves).
#    One request at a time: `transformers serve` seeds torch's global generator with each request's seed, so
#    requests served at once draw from one another's sequence and the answers change from run to run; one at a time,
#    the same seeds give the same answers and the whole loop is reproducible.
run prefdata generate "$OUT/split" --model "$OUT/sft=http://127.0.0.1:$PORT/v1" --n-completions "$K" \
    --max-tokens 48 --temperature 1.0 --concurrency 1 --timeout 300 --out "$OUT/answers" --overwrite --quiet
kill $SERVER 2>/dev/null || true

# 4. Rank with the reward model trained in step 1 (locally, in batches).
run prefdata rank "$OUT/answers" --by reward-model --reward-model "$OUT/rm" --out "$OUT/ranked" --overwrite --quiet

# 5. Pairs of ranked answers (all: every two answers of a prompt with different scores, as InstructGPT; or
#    best-worst, best-vs-rest, --min-margin), all in the reward-model phase; a prompt's answers stay in one part.
run prefdata split "$OUT/ranked" --ratio 0,1,0 --eval-fraction 0.2 --seed 1234 --pairs all --out "$OUT/split2" \
    --overwrite

# 6. The reward model again, on the on-policy pairs.
run prefdata train reward --data "$OUT/split2" --model "$OUT/sft" --out "$OUT/rm2" \
    --dtype fp32 --lr 1e-3 --epochs 2 --micro-batch-size 16 --quiet
echo "done: answers in $OUT/answers, ranked in $OUT/ranked, pairs in $OUT/split2, new reward model in $OUT/rm2" >&2
