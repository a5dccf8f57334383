"""What the three recipes share: options, distributed start-up, DeepSpeed configs, data loaders, checkpoints (Hugging
Face for the result, DeepSpeed for resuming) and the JSON-lines log. Models are in `trainers.models`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from prefdata.contract.errors import PrefdataError

CONFIG_DIR = Path(__file__).parent / "configs"
DTYPES = ("bf16", "fp32")
@dataclass
class RunConfig:
    """Options every phase has; a phase's config adds its own fields."""

    data: str
    model: str
    out: str
    tokenizer: str | None = None
    template: str = "dschat"
    max_seq_len: int = 512
    truncate: str = "drop"
    cache_dir: str | None = None
    deepspeed: str | None = None
    zero_stage: int | None = None
    dtype: str = "bf16"
    micro_batch_size: int | None = None
    grad_accum: int | None = None
    lr: float | None = None
    epochs: int = 1
    max_steps: int | None = None
    warmup_steps: int = 0
    seed: int = 1234
    save_steps: int = 0
    resume: bool = False
    quiet: bool = False


# ------------------------------------------------------------------------------------------------------- options


def common_options(command: Callable) -> Callable:
    """The click options of `RunConfig`, shared by `python -m trainers.<phase>` and `prefdata train <phase>`."""
    options = [
        click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="`prefdata split` output."),
        click.option("--model", required=True, help="HF model dir, a preset (tiny-gpt2, tiny-llama) or config:FILE.json."),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Checkpoint dir (HF layout)."),
        click.option("--tokenizer", default=None, help="Tokenizer dir; default: the model dir (required with a config)."),
        click.option("--template", type=click.Choice(["dschat", "chatml", "tokenizer"]), default="dschat", show_default=True),
        click.option("--max-seq-len", type=int, default=512, show_default=True, help="Prompt + reply + EOS, in tokens."),
        click.option("--truncate", type=click.Choice(["drop", "left", "right"]), default="drop", show_default=True,
                     help="Over-long rows: drop them (counted) or cut tokens from the left or the right."),
        click.option("--cache-dir", default=None, help="Token cache (default $PREFDATA_CACHE/tokens or ~/.cache/prefdata/tokens)."),
        click.option("--deepspeed", "deepspeed", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="DeepSpeed JSON config; default: trainers/configs/<phase>.json. Flags below override it."),
        click.option("--zero-stage", type=click.IntRange(0, 3), default=None),
        click.option("--dtype", type=click.Choice(DTYPES), default="bf16", show_default=True),
        click.option("--micro-batch-size", type=int, default=None, help="Per-rank batch size."),
        click.option("--grad-accum", type=int, default=None, help="Gradient accumulation steps."),
        click.option("--lr", type=float, default=None),
        click.option("--epochs", type=int, default=1, show_default=True),
        click.option("--max-steps", type=int, default=None, help="Stop after this many optimizer steps."),
        click.option("--warmup-steps", type=int, default=0, show_default=True),
        click.option("--seed", type=int, default=1234, show_default=True),
        click.option("--save-steps", type=int, default=0, help="DeepSpeed checkpoint every N steps (0: at the end only)."),
        click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in OUT/checkpoints."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or JSON lines on stdout (the log file stays)."),
        click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def config_from_options(config_class: type, options: dict[str, Any]):
    """Build a phase config from click's keyword arguments (the launcher's ``--local_rank`` goes to the environment)."""
    local_rank = options.pop("local_rank", None)
    if local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if options.get("quiet"):
        quiet_libraries()
    names = {f.name for f in fields(config_class)}
    return config_class(**{k: v for k, v in options.items() if k in names})


def quiet_libraries() -> None:
    """``--quiet`` means quiet: no transformers/datasets progress bars, no library deprecation chatter."""
    import warnings

    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def run_main(command: click.Command) -> None:
    """Entry point of ``python -m trainers.<phase>``: a user mistake is one line on stderr and exit 2."""
    try:
        command.main(standalone_mode=False)
    except PrefdataError as e:
        click.echo(f"prefdata: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)


def summary_line(result: dict[str, Any]) -> str:
    """The one line a command prints at the end: steps, what was learnt, where the checkpoint is."""
    parts = [f"{result['phase']}: {result['steps']} steps"]
    if result.get("first_loss") is not None:
        parts.append(f"loss {result['first_loss']:.4g} -> {result['last_loss']:.4g}")
    before, after = result.get("eval_before") or {}, result.get("eval_after") or {}
    for key in ("perplexity", "eval_accuracy", "eval_mean_margin"):
        if key in after:
            parts.append(f"{key} {before.get(key, float('nan')):.4g} -> {after[key]:.4g}")
    if result.get("rewards"):
        head, tail = result["rewards"][: max(len(result["rewards"]) // 4, 1)], result["rewards"][-max(len(result["rewards"]) // 4, 1) :]
        parts.append(f"reward {sum(head) / len(head):.4g} -> {sum(tail) / len(tail):.4g}, last KL {result['kls'][-1]:.4g}")
    return ", ".join(parts) + f"; checkpoint in {result['out']}"


# --------------------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed() -> tuple[int, int]:
    """Start (or join) the process group: gloo on CPU, the accelerator's backend otherwise. Returns (rank, world)."""
    import deepspeed
    import deepspeed.comm as dist

    if "RANK" not in os.environ:  # plain `python -m trainers.x`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    if not dist.is_initialized():
        backend = "gloo" if deepspeed.get_accelerator().device_name() == "cpu" else None
        deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return dist.get_rank(), dist.get_world_size()


def barrier() -> None:
    import deepspeed.comm as dist

    dist.barrier()


def set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device() -> Any:
    import deepspeed
    import torch

    name = deepspeed.get_accelerator().device_name()
    return torch.device("cpu") if name == "cpu" else torch.device(name, int(os.environ.get("LOCAL_RANK", "0")))


# ------------------------------------------------------------------------------------------------ deepspeed config


def deepspeed_config(cfg: RunConfig, phase: str, *, world_size: int, total_steps: int, lr: float | None = None) -> dict:
    """The shipped (or given) DeepSpeed config with the command-line flags applied on top."""
    path = Path(cfg.deepspeed) if cfg.deepspeed else CONFIG_DIR / f"{phase}.json"
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PrefdataError(f"unreadable DeepSpeed config: {e}", file=str(path)) from None
    if cfg.micro_batch_size is not None:
        ds["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
    if cfg.grad_accum is not None:
        ds["gradient_accumulation_steps"] = cfg.grad_accum
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from micro batch x accumulation x world
    ds.setdefault("zero_optimization", {})
    if cfg.zero_stage is not None:
        ds["zero_optimization"]["stage"] = cfg.zero_stage
    if ds.get("fp16", {}).get("enabled"):
        raise PrefdataError("fp16 is not supported; use --dtype bf16 or fp32", file=str(path))
    ds["bf16"] = {"enabled": cfg.dtype == "bf16"}
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {}})
    optimizer["params"]["torch_adam"] = True  # never JIT-compile DeepSpeed's fused Adam
    if lr is not None or cfg.lr is not None:
        optimizer["params"]["lr"] = lr if lr is not None else cfg.lr
    ds.pop("scheduler", None)
    if cfg.warmup_steps > 0:  # linear warm-up, then linear decay to 0; without warm-up the rate stays constant
        ds["scheduler"] = {
            "type": "WarmupDecayLR",
            "params": {
                "warmup_min_lr": 0.0,
                "warmup_max_lr": optimizer["params"].get("lr", 1e-5),
                "warmup_num_steps": cfg.warmup_steps,
                "total_num_steps": max(total_steps, cfg.warmup_steps + 1),
                "warmup_type": "linear",
            },
        }
    ds["steps_per_print"] = 10**9
    ds["wall_clock_breakdown"] = False
    return ds


def frozen_config(cfg: RunConfig, zero_stage: int) -> dict:
    """Inference-only engines (reference model, reward model): sharded under ZeRO-3, plain otherwise."""
    micro = cfg.micro_batch_size or 1
    return {
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": 1,
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "zero_optimization": {"stage": 3 if zero_stage == 3 else 0},
        "steps_per_print": 10**9,
    }


def zero_stage_of(engine: Any) -> int:
    return int(engine.zero_optimization_stage())


# -------------------------------------------------------------------------------------------------------- loaders


def engine_and_loaders(cfg: Any, phase: str, model: Any, train_set: Any, eval_set: Any, collate: Callable, *, rank: int,
                       world: int) -> tuple[Any, Any, Any, int]:
    """The DeepSpeed engine for ``model`` and the train/eval loaders of one supervised phase (sft, reward).

    The number of optimizer steps (epochs x batches / accumulation, capped by ``--max-steps``) is known only once the
    loader exists, and the learning-rate schedule in the DeepSpeed config needs it: hence one function for both.
    """
    import deepspeed

    probe = deepspeed_config(cfg, phase, world_size=world, total_steps=1)
    micro, accum = probe["train_micro_batch_size_per_gpu"], probe["gradient_accumulation_steps"]
    train_loader = loader(train_set, micro, collate, shuffle=True, seed=cfg.seed, rank=rank, world=world)
    eval_loader = loader(eval_set, cfg.eval_batch_size, collate, shuffle=False, seed=cfg.seed, rank=rank, world=world)
    total_steps = min(cfg.max_steps or 10**12, max(len(train_loader) // accum, 1) * cfg.epochs)
    config = deepspeed_config(cfg, phase, world_size=world, total_steps=total_steps)
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
                                      config=config)
    return engine, train_loader, eval_loader, total_steps


def loader(dataset: Any, batch_size: int, collate: Callable, *, shuffle: bool, seed: int, rank: int, world: int):
    """A DataLoader over a memory-mapped `TokenCache`, each rank reading its own shard (same count on every rank)."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)


def to_device(batch: dict[str, Any], dev: Any) -> dict[str, Any]:
    return {k: v.to(dev) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------------- checkpoints


def unwrap(engine_or_module: Any) -> Any:
    module = getattr(engine_or_module, "module", engine_or_module)
    return getattr(module, "model", module) if type(module).__name__ == "_ValueModel" else module


def save_hf(engine: Any, tokenizer: Any, out: Path, rank: int) -> None:
    """Write a `from_pretrained` checkpoint (model + tokenizer) into ``out``: gathered under ZeRO-3, written by rank 0
    into a temporary folder, then moved into place file by file."""
    import deepspeed

    model = unwrap(engine)
    if zero_stage_of(engine) == 3:
        with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()} if rank == 0 else None
    else:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()} if rank == 0 else None
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".hf-tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, state_dict=state)
        tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            os.replace(path, out / path.name)
        tmp.rmdir()
    barrier()


def save_resume_point(engine: Any, directory: Path, step: int, micro_steps: int) -> None:
    engine.save_checkpoint(str(directory), tag=f"step-{step}", client_state={"step": step, "micro_steps": micro_steps})


def load_resume_point(engine: Any, directory: Path) -> tuple[int, int]:
    """(optimizer steps, micro-batches) already done, from DeepSpeed's latest checkpoint; (0, 0) if there is none."""
    if not (directory / "latest").exists():
        return 0, 0
    path, client = engine.load_checkpoint(str(directory))
    if path is None:
        raise PrefdataError("cannot load the latest checkpoint", file=str(directory))
    return int(client["step"]), int(client["micro_steps"])


# ---------------------------------------------------------------------------------------------------------- logs


class MetricsLog:
    """JSON lines in ``OUT/metrics.jsonl`` (appended, so a resumed run continues the file) and on stdout; rank 0 only."""

    def __init__(self, out: Path, rank: int, quiet: bool) -> None:
        self.rank = rank
        self.quiet = quiet
        self.path = out / "metrics.jsonl"
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)

    def __call__(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        line = json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()})
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if not self.quiet:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum per-rank totals (eval loss x tokens, correct pairs, …) over the world."""
    import deepspeed.comm as dist
    import torch

    tensor = torch.tensor(values, dtype=torch.float64, device=device())
    if dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()
