"""What a run reports: JSON lines (the log file, and stdout unless quiet) and the one summary line at the end.

Results go to stdout, diagnostics (progress bars, library warnings) to stderr, as for every `prefdata` verb.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


class MetricsLog:
    """JSON lines in ``OUT/metrics.jsonl`` and on stdout; rank 0 only. A fresh run writes into a new directory (see
    `trainers.runtime.output`), so its log starts empty; ``--resume`` appends to the log of the run it continues."""

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
        quarter = max(len(result["rewards"]) // 4, 1)
        head, tail = result["rewards"][:quarter], result["rewards"][-quarter:]
        parts.append(f"reward {sum(head) / len(head):.4g} -> {sum(tail) / len(tail):.4g}, last KL {result['kls'][-1]:.4g}")
    return ", ".join(parts) + f"; checkpoint in {result['out']}"
