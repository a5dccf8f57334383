"""Two kinds of checkpoint: a Hugging Face folder for the result (what `from_pretrained` loads) and DeepSpeed's own
for resuming (optimizer state, step counters)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from trainers.components import lora
from trainers.components.chat_template import with_training_template
from trainers.runtime.distributed import barrier
from trainers.runtime.ds_config import zero_stage_of


def unwrap(engine_or_module: Any) -> Any:
    """The transformers model inside a DeepSpeed engine (and inside the value-model wrapper)."""
    module = getattr(engine_or_module, "module", engine_or_module)
    return getattr(module, "model", module) if type(module).__name__ == "_ValueModel" else module


def save_hf(engine: Any, tokenizer: Any, out: Path, rank: int, *, template: str, merge_lora: bool = False) -> None:
    """Write a `from_pretrained` checkpoint (model + tokenizer) into ``out``: gathered under ZeRO-3, written by rank 0
    into a temporary folder, then moved into place file by file.

    Under LoRA the adapter goes to ``out/adapter`` (``PeftModel.from_pretrained(base, out/adapter)``) and, with
    ``merge_lora``, the base with the adapter merged in is ``out``'s model, so the next phase reads it as usual.
    The tokenizer is saved with the chat template of ``template``, the rendering the model was trained on, so TRL,
    vLLM and ``transformers serve`` prompt it as it learnt."""
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
        if lora.is_lora(model):
            model.save_pretrained(tmp / "adapter", state_dict=state)
            if merge_lora:
                lora.merged_model(model, state).save_pretrained(tmp)
        else:
            model.save_pretrained(tmp, state_dict=state)
        with_training_template(tokenizer, template).save_pretrained(tmp)
        for path in tmp.iterdir():
            if path.is_dir():
                shutil.rmtree(out / path.name, ignore_errors=True)
            os.replace(path, out / path.name)
        tmp.rmdir()
    barrier()


def save_resume_point(engine: Any, directory: Path, step: int, micro_steps: int) -> None:
    """DeepSpeed's checkpoint, tagged by step, with the counters a resumed run needs to skip what is done."""
    engine.save_checkpoint(str(directory), tag=f"step-{step}", client_state={"step": step, "micro_steps": micro_steps})


def load_resume_point(engine: Any, directory: Path) -> tuple[int, int]:
    """(optimizer steps, micro-batches) already done, from DeepSpeed's latest checkpoint; (0, 0) if there is none.

    A ``latest`` that names no checkpoint, or a checkpoint DeepSpeed cannot read (truncated, damaged), is one line:
    resuming from it would train from the wrong state, or die in `torch.load` with a traceback."""
    latest = directory / "latest"
    if not latest.exists():
        return 0, 0
    try:
        tag = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        tag = ""
    if not tag or "/" in tag or not (directory / tag).is_dir():
        raise PrefdataError(f"--resume: `latest` names checkpoint {tag!r}, which is not there", file=str(latest))
    try:
        path, client = engine.load_checkpoint(str(directory))
    except Exception as e:  # noqa: BLE001 - whatever DeepSpeed or torch.load raise on a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PrefdataError(f"--resume: cannot load checkpoint {tag}: {reason}", file=str(directory / tag)) from None
    if path is None or not isinstance(client, dict) or "step" not in client or "micro_steps" not in client:
        raise PrefdataError(f"--resume: checkpoint {tag} cannot be loaded or has no step counters",
                            file=str(directory / tag))
    return int(client["step"]), int(client["micro_steps"])


def finish_run(cfg: Any, engine: Any, tokenizer: Any, work: Path, rank: int, *, phase: str, step: int, micro_step: int,
               losses: list[float], before: dict[str, Any], after: dict[str, Any], train_set: Any, eval_set: Any,
               log: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The last step every supervised recipe shares (sft, reward, dpo, kto): keep a resume point, write the Hugging
    Face checkpoint with the run's chat template, log the end line and return the run's summary."""
    save_resume_point(engine, work / "checkpoints", step, micro_step)
    save_hf(engine, tokenizer, work, rank, merge_lora=cfg.lora_merge, template=cfg.template)
    summary = {"phase": phase, "event": "end", "steps": step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None, "eval_before": before, "eval_after": after,
               "out": str(Path(cfg.out))}
    log(summary)
    return {**summary, "cache_train": train_set.info, "cache_eval": eval_set.info, "cache_built": train_set.built,
            "config": asdict(cfg)}
