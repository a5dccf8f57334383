"""Peak resident memory of SFT and DPO with and without LoRA on the same model (issue #13 item 3).

    python bench/lora_memory.py [--work DIR] [--layers 8] [--width 768] [--steps 2] [--micro-batch-size 4]
                                [--max-seq-len 256]

Builds the bundled sample into a phase split and a tokenizer (`prefdata import --sample`, `split`, `train
tokenizer`), writes a GPT-2 config of the given size (no download), then runs each recipe in its own process, once
with full fine-tuning and once with ``--lora-rank 16``, and reads the process's peak RSS (``ru_maxrss`` from
``wait4``). Full fine-tuning holds fp32 gradients and two Adam moments for every weight; LoRA holds them for the
adapters only, so the gap is up to about 12 bytes per base parameter; it shrinks where the activations of the backward
pass, which LoRA does not reduce, set the peak (larger batches and sequences).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``; return (peak RSS in MiB, wall seconds). Fails loudly with the command's stderr."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{stderr[-3000:]}")
    print(stdout.strip(), file=sys.stderr)
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def prepare(work: Path, env: dict[str, str]) -> None:
    """The sample as a phase split, and a tokenizer trained on it."""
    steps = [
        ["prefdata", "import", "--sample", "--out", str(work / "raw"), "--overwrite", "--quiet"],
        ["prefdata", "split", str(work / "raw"), "--ratio", "6,2,2", "--eval-fraction", "0.1", "--seed", "1234",
         "--out", str(work / "split"), "--overwrite", "--quiet"],
        ["prefdata", "train", "tokenizer", "--data", str(work / "split"), "--out", str(work / "tok"),
         "--vocab-size", "2000", "--quiet"],
    ]
    for command in steps:
        subprocess.run(command, env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--micro-batch-size", type=int, default=4)
    parser.add_argument("--max-seq-len", type=int, default=256)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="prefdata-lora-bench-"))
    env = {**os.environ, "PREFDATA_HOME": str(work / "home"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    prepare(work, env)
    config = work / "model.json"
    config.write_text(json.dumps({"model_type": "gpt2", "n_layer": args.layers, "n_embd": args.width,
                                  "n_head": max(args.width // 64, 1), "n_positions": 1024}))
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = json.loads(config.read_text())
    params = sum(p.numel() for p in AutoModelForCausalLM.from_config(
        AutoConfig.for_model(spec.pop("model_type"), vocab_size=2000, **spec)).parameters())
    print(f"model: gpt2 {args.layers} layers x {args.width}, {params / 1e6:.1f}M parameters; micro-batch "
          f"{args.micro_batch_size}, max {args.max_seq_len} tokens; torch {torch.__version__}, {os.cpu_count()} CPUs")
    print("| recipe | mode | peak RSS (MiB) | wall (s) |")
    print("|---|---|---:|---:|")
    for recipe in ("sft", "dpo"):
        for mode, extra in (("full", []), (f"LoRA r={args.lora_rank}", ["--lora-rank", str(args.lora_rank)])):
            out = work / f"{recipe}-{'lora' if extra else 'full'}"
            command = [sys.executable, "-m", f"trainers.recipes.{recipe}", "--data", str(work / "split"), "--model",
                       f"config:{config}", "--tokenizer", str(work / "tok"), "--out", str(out), "--dtype", "fp32",
                       "--zero-stage", "0", "--micro-batch-size", str(args.micro_batch_size), "--max-steps",
                       str(args.steps), "--max-seq-len", str(args.max_seq_len), "--truncate", "left",
                       "--eval-batch-size", str(args.micro_batch_size), "--quiet", *extra]
            peak, seconds = run(command, env)
            print(f"| {recipe} | {mode} | {peak:.0f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
