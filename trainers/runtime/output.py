"""A trainer's ``--out``: one writer, never one of its own inputs, and never half written.

A fresh run trains into a hidden temporary sibling (``.OUT.tmp-PID``, the PID of rank 0) and publishes it with a
rename at the end, so a failed run leaves the old ``--out`` (or none) and its ``metrics.jsonl`` starts empty. ``--resume``
on an ``--out`` that holds checkpoints trains in place and appends to its log. The output lock is held for the whole run
(a second trainer on the same ``--out`` fails at once, naming the holder's PID); a temporary sibling left by a run
that was killed is removed by the next run, which says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.storage.publish import check_output_dir, output_lock, publish_dir
from trainers.runtime import distributed

INPUT_OPTIONS = ("data", "model", "tokenizer", "reward_model", "critic_model", "unsup", "ref_model")
MARKER = "metrics.jsonl"  # what every trainer writes first: an --out holding it is a trainer's, and may be replaced


def refuse_overlap(out: Path, config: Any, options: tuple[str, ...] = INPUT_OPTIONS) -> None:
    """One line when ``out`` is, contains or lies inside one of the run's input directories: publishing would replace
    the model (or data, tokenizer) the run reads."""
    target = out.resolve()
    for option in options:
        value = getattr(config, option, None)
        if not value or not Path(value).is_dir():  # presets and config:FILE.json are not directories
            continue
        source = Path(value).resolve()
        if target == source or source in target.parents or target in source.parents:
            flag = option.replace("_", "-")
            raise PrefdataError(f"--out overlaps --{flag} {value}: the run would overwrite its own input; choose "
                                "another --out", file=str(out))


def remove_stale_temps(out: Path) -> None:
    """Temporary siblings of ``out`` left by a killed run (the caller holds the output lock, so their owner is gone)."""
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
        print(f"prefdata: removed {stale}, left by a run that was killed", file=sys.stderr)


def _from_rank_zero(value: float, rank: int, world: int) -> float:
    """Rank 0's ``value`` on every rank (a world of one needs no process group: the tokenizer recipe has none)."""
    if world == 1:
        return value
    return distributed.all_reduce_sum([value if rank == 0 else 0.0])[0]


def _lock_on_rank_zero(out: Path, rank: int, world: int, stack: contextlib.ExitStack) -> None:
    """Rank 0 takes the output lock; every rank learns whether it did, so none waits forever on a failed one."""
    failure = None
    if rank == 0:
        try:
            stack.enter_context(output_lock(out, what="trainer output"))
        except PrefdataError as e:
            failure = e
    failed = _from_rank_zero(1.0 if failure else 0.0, rank, world)
    if failure:
        raise failure
    if failed:
        raise PrefdataError("rank 0 could not lock the output", file=str(out))


def _replaceable(out: Path) -> None:
    check_output_dir(out, overwrite=True, marker=MARKER, what="trainer output")


@contextlib.contextmanager
def trainer_output(config: Any, rank: int = 0, world: int = 1, *,
                   replaceable: Callable[[Path], None] = _replaceable) -> Iterator[Path]:
    """The directory the run writes into (the module docstring says which), published to ``config.out`` when the body
    returns and removed when it raises. ``replaceable`` refuses an existing ``--out`` this run must not replace."""
    out = Path(config.out)
    refuse_overlap(out, config)
    with contextlib.ExitStack() as stack:
        _lock_on_rank_zero(out, rank, world, stack)
        if getattr(config, "resume", False) and (out / "checkpoints").is_dir():
            yield out
            return
        replaceable(out)
        work = out.parent / f".{out.name}.tmp-{int(_from_rank_zero(float(os.getpid()), rank, world))}"
        if rank == 0:
            remove_stale_temps(out)
            work.mkdir(parents=True)
        if world > 1:
            distributed.barrier()
        try:
            yield work
            if rank == 0:
                publish_dir(work, out)
        finally:
            if rank == 0:
                shutil.rmtree(work, ignore_errors=True)
        if world > 1:
            distributed.barrier()
