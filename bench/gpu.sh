#!/usr/bin/env bash
# The GPU benchmark in one command: install what is missing, then bench/gpu.py (SFT, reward and DPO at bf16 under
# ZeRO-2 and ZeRO-3, packing off and on; PPO with a small actor), printing tokens/s and MFU. Under 8 minutes on one H200.
#
#   bash bench/gpu.sh                 # the full run; extra arguments go to bench/gpu.py
#   bash bench/gpu.sh --smoke         # tiny model on CPU with what is installed (no installs): the plumbing only
#
# Packages come from the registry, pinned; a machine without network gives a folder of wheels instead
# (PREFDATA_WHEELS=DIR: pip installs from it alone). Installed into the running python (PYTHON, default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# PyPI's Linux x86-64 torch wheels are CUDA builds; a torch that already sees a GPU is kept.
TORCH=${TORCH_SPEC:-torch==2.13.0}
PINNED=(deepspeed==0.19.8 "transformers>=5.17,<6" "peft>=0.17" tokenizers accelerate
        "datasets>=2.19" "pyarrow>=15" "jsonschema>=4.18" "fastjsonschema>=2.19" "click>=8.1" "tqdm>=4.66"
        "filelock>=3.12" "huggingface_hub>=0.23" "openai>=1.30" numpy)

missing=()
smoke=0
for arg in "$@"; do [[ $arg == --smoke ]] && smoke=1; done
if [[ $smoke == 0 ]] && ! $PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  missing+=("$TORCH")
fi
((smoke)) && PINNED=()
for spec in "${PINNED[@]}"; do
  # A requirement already met (name, and version where pinned) is left alone: the image's CUDA stack stays intact.
  $PY - "$spec" <<'EOF' 2>/dev/null || missing+=("$spec")
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
req = Requirement(sys.argv[1])
sys.exit(0 if req.specifier.contains(version(req.name), prereleases=True) else 1)
EOF
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  if [[ -n ${PREFDATA_WHEELS:-} ]]; then
    $PY -m pip install -q --no-index --find-links "$PREFDATA_WHEELS" "${missing[@]}" >&2
  else
    $PY -m pip install -q "${missing[@]}" >&2
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec $PY bench/gpu.py "$@"
