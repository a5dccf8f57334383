"""GPU benchmark of the recipes: SFT, reward and DPO at bf16 under ZeRO-2 and ZeRO-3, padded and packed, then PPO with
a small actor; tokens/s and MFU of each run. `bench/gpu.sh` installs what is missing and runs this.

    bash bench/gpu.sh                        # one H200: a ~0.5B llama built from a config, under 8 minutes
    python bench/gpu.py --smoke              # tiny model on CPU: the plumbing only, figures meaningless

Each run is the real recipe (`train_sft`, `train_reward`, `train_dpo`, `train_ppo`) in this process, a world of one.
`Meter` wraps `deepspeed.initialize`: every forward through an engine's module adds its model FLOPs, and every optimizer
step of the first trained engine (the policy) is timed; the first ``--warmup`` steps are not counted.

FLOPs (PaLM's appendix B convention, attention counted non-causal): a forward pass over sequences of lengths n_i costs
``2·N·Σn_i + 4·L·d·Σn_i²`` and a training pass three times that, ``6·N·Σn_i + 12·L·d·Σn_i²``, where N is the weight
count of the linear layers (the LM head included, embedding look-ups not), L the layers and d the hidden size; a
decoding step with a KV cache costs ``2·N + 4·L·d·context`` per new token. Only real tokens count, so padding is never
useful work. MFU = counted FLOPs / measured time / peak, with the H200's dense bf16 peak of 989 TFLOP/s (``--peak``).
Tokens/s counts the real tokens of the trained model's training passes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
H200_BF16_PEAK = 989e12  # dense bf16 tensor-core peak of the H200 SXM, FLOP/s
# ~0.5B llama: 28 layers x 15.2M + 2 x 32k x 1024 embeddings = 0.49B parameters with a 32k vocabulary.
FULL_MODEL = {"model_type": "llama", "num_hidden_layers": 28, "hidden_size": 1024, "intermediate_size": 4096,
              "num_attention_heads": 16, "num_key_value_heads": 4, "max_position_embeddings": 4096}
PPO_ACTOR = {"model_type": "llama", "num_hidden_layers": 8, "hidden_size": 768, "intermediate_size": 2048,
             "num_attention_heads": 12, "num_key_value_heads": 4, "max_position_embeddings": 4096}
SMOKE_MODEL = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 176,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024}
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu"]


def forward_flops(params: int, layers: int, hidden: int, lengths: list[int]) -> float:
    """One forward pass over whole sequences of these lengths (see the module doc)."""
    return 2.0 * params * sum(lengths) + 4.0 * layers * hidden * sum(n * n for n in lengths)


def train_flops(params: int, layers: int, hidden: int, lengths: list[int]) -> float:
    """Forward and backward: three forwards."""
    return 3.0 * forward_flops(params, layers, hidden, lengths)


def linear_weights(module: Any) -> int:
    """N: weights of the linear layers (GPT-2's Conv1D too), full size even where ZeRO-3 has partitioned them."""
    total = 0
    for sub in module.modules():
        if type(sub).__name__ in ("Linear", "Conv1D") and getattr(sub, "weight", None) is not None:
            total += int(getattr(sub.weight, "ds_numel", sub.weight.numel()))
    return total


def sequence_lengths(input_ids: Any, attention_mask: Any, position_ids: Any, pad_id: int) -> list[int]:
    """Real-token lengths of the sequences of a full-sequence batch: rows of a padded batch, segments of a packed one."""
    import torch

    real = input_ids != pad_id
    if position_ids is not None and attention_mask is None:  # packed: a sequence starts where its positions restart
        segment = torch.cumsum((position_ids.expand_as(input_ids) == 0).flatten().long(), 0)
        counts = torch.bincount(segment[real.flatten()])
        return [int(c) for c in counts if c > 0]
    if attention_mask is not None:
        real = real & attention_mask.bool()
    return [int(n) for n in real.sum(-1) if n > 0]


@dataclasses.dataclass
class Meter:
    """FLOPs of every pass through a DeepSpeed engine's module, and the timed steps of the first trained engine."""

    pad_id: int
    flops: float = 0.0
    tokens: int = 0  # real tokens of the main engine's training passes
    steps: list[tuple[float, float, int]] = dataclasses.field(default_factory=list)  # (time, flops, tokens)
    main: Any = None

    def _hook(self, engine: Any, module: Any) -> None:
        import torch

        params = linear_weights(module)
        config = getattr(module, "config", None) or module.model.config
        layers, hidden = config.num_hidden_layers, config.hidden_size

        def count(hooked: Any, args: tuple, kwargs: dict) -> None:
            input_ids = kwargs.get("input_ids", args[0] if args else None)
            if input_ids is None:
                return
            mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
            positions = kwargs.get("position_ids", args[2] if len(args) > 2 else None)
            training = torch.is_grad_enabled() and hooked.training
            if input_ids.shape[1] == 1 and mask is not None:  # a decoding step: one new token per row, KV cache
                new = int((input_ids != self.pad_id).sum())
                self.flops += 2.0 * params * new + 4.0 * layers * hidden * float(mask.sum())
                return
            lengths = sequence_lengths(input_ids, mask, positions, self.pad_id)
            self.flops += (train_flops if training else forward_flops)(params, layers, hidden, lengths)
            if training and engine is self.main:
                self.tokens += sum(lengths)

        module.register_forward_pre_hook(count, with_kwargs=True)

    def _timed_step(self, engine: Any) -> None:
        import torch

        step = engine.step

        def timed(*args: Any, **kwargs: Any) -> Any:
            out = step(*args, **kwargs)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.steps.append((time.perf_counter(), self.flops, self.tokens))
            return out

        engine.step = timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[Meter]:
        """Wrap `deepspeed.initialize` for the duration of one run."""
        import deepspeed

        original = deepspeed.initialize

        def initialize(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            engine = result[0]
            trained = kwargs.get("model_parameters") is not None or "optimizer" in (kwargs.get("config") or {})
            if trained and self.main is None:
                self.main = engine
                self._timed_step(engine)
            self._hook(engine, engine.module)
            return result

        deepspeed.initialize = initialize
        try:
            yield self
        finally:
            deepspeed.initialize = original

    def rates(self, warmup: int) -> dict[str, float]:
        """Tokens/s and FLOP/s between the end of step ``warmup`` and the end of the last step."""
        if len(self.steps) <= warmup + 1:
            raise RuntimeError(f"only {len(self.steps)} optimizer steps: need more than warmup + 1 = {warmup + 1}")
        (t0, f0, n0), (t1, f1, n1) = self.steps[warmup], self.steps[-1]
        return {"steps": len(self.steps) - 1 - warmup, "seconds": t1 - t0, "tokens_per_s": (n1 - n0) / (t1 - t0),
                "flops_per_s": (f1 - f0) / (t1 - t0)}


# ------------------------------------------------------------------------------------------------------------- data


def find_hh() -> Path | None:
    """The real HH file where a checkout keeps it (../shared, ./shared or $PREFDATA_SHARED_DATA), if any."""
    roots = [os.environ.get("PREFDATA_SHARED_DATA"), REPO / "shared" / "data", REPO.parent / "shared" / "data"]
    for root in filter(None, roots):
        path = Path(root) / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"
        if path.is_file():
            return path
    return None


def source_rows(n: int, seed: int) -> tuple[list[dict], str]:
    """HH pairs (the real length distribution) when the file is here, else made-up pairs of long-tailed lengths."""
    from prefdata.contract.row import make_row

    hh = find_hh()
    if hh is not None:
        from prefdata.jobs.importer import ParsedRow, iter_parsed

        rows = [item.row for item in iter_parsed(hh, "trl-implicit", source="hh-rlhf/harmless-base")
                if isinstance(item, ParsedRow)]
        return rows[:n], f"HH harmless-base test ({hh})"
    rng = random.Random(seed)

    def text(mean_words: float) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(max(1, int(rng.lognormvariate(0, 0.8) * mean_words))))

    rows = [make_row([{"role": "user", "content": f"{text(30)} {k}"}], text(60), text(60), source="bench/synthetic")
            for k in range(n)]
    return rows, "synthetic (no HH file found: lognormal lengths)"


def prepare(work: Path, rows: list[dict], vocab: int, used: int) -> None:
    """A byte-level BPE trained on all ``rows``, with a pad token of its own, and a split directory with every phase's
    splits from the first ``used`` rows (enough for the timed steps; fewer rows, less DPO reference pass)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from prefdata.contract.render import render
    from prefdata.storage.dataset import DatasetWriter

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [render(r["prompt"], r["chosen"]) for r in rows] + [r["rejected"] or "" for r in rows]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "</s>", "<unk>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(work / "tok")
    rows = rows[:used]
    n_eval = max(len(rows) // 64, 4)
    parts = {"sft_eval": rows[:n_eval], "rm_eval": rows[:n_eval], "ppo_eval": rows[:n_eval],
             "sft_train": rows[n_eval:], "rm_train": rows[n_eval:], "ppo_train": rows[n_eval:]}
    with DatasetWriter(work / "split", command="bench-gpu") as writer:
        for split, part in parts.items():
            for row in part:
                writer.count_in()
                writer.write(row, split)


# ------------------------------------------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Run:
    phase: str
    zero: int
    packing: bool


def recipe(phase: str) -> tuple[Any, Any] | None:
    """(config class, train function) of a phase, None where this tree has no such recipe (DPO before it lands)."""
    import importlib

    try:
        module = importlib.import_module(f"trainers.recipes.{phase}")
    except ModuleNotFoundError:
        return None
    names = {"sft": ("SFTConfig", "train_sft"), "reward": ("RewardConfig", "train_reward"),
             "dpo": ("DPOConfig", "train_dpo"), "ppo": ("PPOConfig", "train_ppo")}[phase]
    return getattr(module, names[0]), getattr(module, names[1])


def run_one(run: Run, common: dict[str, Any], extra: dict[str, Any], warmup: int, pad_id: int) -> dict[str, Any]:
    """One recipe run under the meter; resume checkpoints are skipped (not what is measured, gigabytes each)."""
    import torch

    from trainers.runtime import checkpoints

    found = recipe(run.phase)
    if found is None:
        return {"run": run, "skipped": f"trainers.recipes.{run.phase} is not in this tree"}
    config_class, train = found
    names = {f.name for f in dataclasses.fields(config_class)}
    if run.packing and "packing" not in names:
        return {"run": run, "skipped": "this recipe has no --packing"}
    options = {**common, **extra, "zero_stage": run.zero, **({"packing": True} if run.packing else {})}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    meter = Meter(pad_id)
    save_resume_point = checkpoints.save_resume_point
    checkpoints.save_resume_point = lambda *args, **kwargs: None
    try:
        with meter.installed():
            train(config_class(**{k: v for k, v in options.items() if k in names}))
    finally:
        checkpoints.save_resume_point = save_resume_point
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    result = {"run": run, **meter.rates(warmup), "peak_gib": peak}
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def table(results: list[dict[str, Any]], peak: float) -> str:
    lines = ["| phase | ZeRO | packing | timed steps | tokens/s | TFLOP/s | MFU | peak GiB |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        run = r["run"]
        head = f"| {run.phase} | {run.zero} | {'on' if run.packing else 'off'} |"
        if "skipped" in r:
            lines.append(f"{head} skipped: {r['skipped']} | | | | |")
            continue
        memory = "-" if math.isnan(r["peak_gib"]) else f"{r['peak_gib']:.1f}"  # no GPU: no device memory figure
        lines.append(f"{head} {r['steps']} | {r['tokens_per_s']:,.0f} | {r['flops_per_s'] / 1e12:.1f} | "
                     f"{r['flops_per_s'] / peak:.1%} | {memory} |")
    return "\n".join(lines)


def parameters(config_json: Path, tokenizer: Any) -> int:
    """Parameter count of the causal LM a config file builds, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.components.models import model_config

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(f"config:{config_json}", tokenizer))
    return sum(p.numel() for p in model.parameters())


def world_of_one() -> None:
    from trainers.runtime.distributed import free_port

    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, few rows, CPU is fine: tests the plumbing")
    parser.add_argument("--phases", default="sft,reward,dpo,ppo")
    parser.add_argument("--zero", default="2,3", help="ZeRO stages of sft/reward/dpo (PPO runs under the first)")
    parser.add_argument("--packing", default="off,on")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    parser.add_argument("--peak", type=float, default=H200_BF16_PEAK, help="device peak, FLOP/s (for MFU)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "prefdata-gpu-bench")
    args = parser.parse_args(argv)
    smoke = args.smoke
    steps = args.steps or (2 if smoke else 10)
    warmup = args.warmup if args.warmup is not None else (1 if smoke else 3)
    micro, seq_len = (2, 128) if smoke else (8, 1024)
    world_of_one()
    import torch
    from transformers import AutoTokenizer

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rows, described = source_rows(64 if smoke else 3000, seed=0)
    used = min(len(rows), 64 if smoke else 640)
    prepare(args.work, rows, vocab=1000 if smoke else 32000, used=used)
    tokenizer = AutoTokenizer.from_pretrained(args.work / "tok")
    model_json, actor_json = args.work / "model.json", args.work / "actor.json"
    model_json.write_text(json.dumps(SMOKE_MODEL if smoke else FULL_MODEL))
    actor_json.write_text(json.dumps(SMOKE_MODEL if smoke else PPO_ACTOR))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"model: {parameters(model_json, tokenizer) / 1e6:,.1f}M parameters ({model_json.read_text()}); PPO actor "
          f"{parameters(actor_json, tokenizer) / 1e6:,.1f}M", flush=True)
    print(f"device: {device}; data: {described}, {used:,} of {len(rows):,} rows; vocabulary {len(tokenizer):,}; "
          f"micro-batch {micro}, max {seq_len} tokens; {warmup} warm-up + {steps} timed steps per run", flush=True)
    print(f"FLOPs: train 6*N*tokens + 12*L*d*sum(n^2), forward 2*N*tokens + 4*L*d*sum(n^2); "
          f"peak {args.peak / 1e12:.0f} TFLOP/s bf16 dense", flush=True)

    common = {"data": str(args.work / "split"), "model": f"config:{model_json}", "tokenizer": str(args.work / "tok"),
              "cache_dir": str(args.work / "cache"), "dtype": "bf16", "micro_batch_size": micro, "grad_accum": 1,
              "lr": 1e-5, "max_seq_len": seq_len, "max_steps": warmup + 1 + steps, "eval_batch_size": micro,
              "quiet": True}
    zeros = [int(z) for z in args.zero.split(",")]
    packings = [p == "on" for p in args.packing.split(",")]
    phases = args.phases.split(",")
    results, reward_dir = [], None
    for phase in (p for p in ("sft", "reward", "dpo") if p in phases):
        for zero in zeros:
            for packing in packings:
                run = Run(phase, zero, packing)
                out = args.work / f"{phase}-z{zero}-{'packed' if packing else 'padded'}"
                results.append(run_one(run, {**common, "out": str(out)}, {}, warmup, tokenizer.pad_token_id))
                print(table(results[-1:], args.peak).splitlines()[-1], flush=True)
                if phase == "reward" and "skipped" not in results[-1]:
                    reward_dir = out  # PPO's reward model
                elif out.exists():
                    shutil.rmtree(out)
    if "ppo" in phases:
        if reward_dir is None:
            raise SystemExit("ppo needs the reward phase in --phases (its checkpoint is PPO's reward model)")
        ppo = {"model": f"config:{actor_json}", "critic_model": f"config:{actor_json}", "reward_model": str(reward_dir),
               "max_new_tokens": 16 if smoke else 128, "max_prompt_len": 64 if smoke else 256, "ppo_epochs": 1}
        results.append(run_one(Run("ppo", zeros[0], False), {**common, "out": str(args.work / "ppo")}, ppo, warmup,
                               tokenizer.pad_token_id))
        print(table(results[-1:], args.peak).splitlines()[-1], flush=True)
    print(table(results, args.peak), flush=True)
    return results


if __name__ == "__main__":
    main()
