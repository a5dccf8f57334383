"""Starting the processes: DeepSpeed imported with its log on stderr, the process group, seeds, the device, and the
one collective the recipes need (a sum of per-rank totals)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import socket
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any


def _only_errors(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


@contextlib.contextmanager
def deepspeed_prints(quiet: bool) -> Iterator[None]:
    """DeepSpeed `print`s diagnostics on stdout ("... shm_comm_op built successfully"): to stderr, or nowhere if quiet."""
    with contextlib.redirect_stdout(io.StringIO() if quiet else sys.stderr):
        yield


def import_deepspeed(quiet: bool = False) -> ModuleType:
    """DeepSpeed with its log kept off stdout, which carries only results.

    Its logger writes to the ``sys.stdout`` of the moment it is created, on import, and warns "Setting accelerator to
    CPU" right then: importing under a stderr redirect binds its log to stderr for good, and ``quiet`` lets only
    errors through.
    """
    logger = logging.getLogger("DeepSpeed")
    if quiet:
        logger.addFilter(_only_errors)
    else:
        logger.removeFilter(_only_errors)
    with contextlib.redirect_stdout(sys.stderr):
        import deepspeed
    return deepspeed


def free_port() -> int:
    """A TCP port nobody listens on now, for a world of one's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(quiet: bool = False) -> tuple[int, int]:
    """Start (or join) the process group: gloo on CPU, the accelerator's backend otherwise. Returns (rank, world)."""
    deepspeed = import_deepspeed(quiet)
    import deepspeed.comm as dist

    if "RANK" not in os.environ:  # plain `python -m trainers.recipes.x`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if not dist.is_initialized():
        backend = "gloo" if deepspeed.get_accelerator().device_name() == "cpu" else None
        with deepspeed_prints(quiet):
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
    return dist.get_rank(), dist.get_world_size()


def is_rank_zero() -> bool:
    """Whether this process prints results (every rank trains; one reports)."""
    return int(os.environ.get("RANK", "0")) == 0


def barrier() -> None:
    import deepspeed.comm as dist

    dist.barrier()


def set_seed(seed: int) -> None:
    """Seed every generator the recipes draw from (Python, numpy, torch)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def device() -> Any:
    """This rank's device: the CPU, or the accelerator numbered by LOCAL_RANK."""
    import deepspeed
    import torch

    name = deepspeed.get_accelerator().device_name()
    return torch.device("cpu") if name == "cpu" else torch.device(name, int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(values: list[float]) -> list[float]:
    """Sum per-rank totals (eval loss x tokens, correct pairs, …) over the world."""
    import deepspeed.comm as dist
    import torch

    tensor = torch.tensor(values, dtype=torch.float64, device=device())
    if dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor.cpu().tolist()
