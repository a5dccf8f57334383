"""Small builders shared by the split/dedup/export/stats tests: rows of our own text and dataset directories."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from prefdata.errors import RowError
from prefdata.row import make_row
from prefdata.sources.hh import split_pair
from prefdata.store import DatasetWriter


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def pair(i: int, group: str | None = None, source: str = "custom/test") -> dict:
    return make_row(user(f"Question {i}: how do I water a fern in winter?"), f"Water it lightly, answer {i}.",
                    f"Never water it, answer {i}.", source=source, group=group)


def demo(i: int, group: str | None = None) -> dict:
    return make_row(user(f"Demo {i}: name a hardy herb."), f"Thyme is hardy ({i}).", source="custom/demo", group=group)


def prompt_only(i: int, group: str | None = None) -> dict:
    return make_row(user(f"Prompt {i}: suggest a name for a cat."), source="custom/prompts", group=group)


def scored(prompt: str, reply: str, score: float, group: str | None = None) -> dict:
    return make_row(user(prompt), reply, source="custom/scored", group=group, chosen_score=score)


def write_dataset(path: Path, splits: dict[str, list[dict]]) -> Path:
    with DatasetWriter(path, command="test") as writer:
        for name, rows in splits.items():
            writer.split(name)
            for row in rows:
                writer.count_in()
                writer.write(row, name)
    return path


def hh_rows(path: Path) -> list[dict]:
    """The real HH records that parse cleanly, as canonical rows."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            try:
                prompt, chosen, rejected = split_pair(record["chosen"], record["rejected"])
                rows.append(make_row(prompt, chosen, rejected, source="hh-rlhf/harmless-base"))
            except RowError:
                continue
    return rows


def groups_by_split(directory: Path) -> dict[str, set[str]]:
    from prefdata.store import iter_rows

    seen: dict[str, set[str]] = {}
    for split, row in iter_rows(directory):
        seen.setdefault(row["group"], set()).add(split)
    return seen
