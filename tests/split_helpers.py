"""Small builders shared by the split/dedup/export/stats tests: rows of our own text and dataset directories."""

from __future__ import annotations

from pathlib import Path

from support import hh_rows, write_dataset  # noqa: F401  (re-exported for the tests that import them here)

from prefdata.contract.row import make_row


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def pair(i: int, group: str | None = None, source: str = "custom/test") -> dict:
    return make_row(user(f"Question {i}: how do I water a fern in winter?"), f"Water it lightly, answer {i}.",
                    f"Never water it, answer {i}.", source=source, group=group)


def demo(i: int, group: str | None = None) -> dict:
    return make_row(user(f"Demo {i}: name a hardy herb."), f"Thyme is hardy ({i}).", source="custom/demo", group=group)


def prompt_only(i: int, group: str | None = None) -> dict:
    return make_row(user(f"Prompt {i}: suggest a name for a cat."), source="custom/prompts", group=group)


def unpaired(i: int, label: bool, group: str | None = None) -> dict:
    reply = f"Unpaired reply {i}: {'a kind answer' if label else 'a rude answer'}."
    return make_row(user(f"Unpaired {i}: how do I greet a neighbour?"), reply if label else None,
                    None if label else reply, label=label, source="custom/kto", group=group)


def scored(prompt: str, reply: str, score: float, group: str | None = None) -> dict:
    return make_row(user(prompt), reply, source="custom/scored", group=group, chosen_score=score)


def groups_by_split(directory: Path) -> dict[str, set[str]]:
    from prefdata.storage.dataset import iter_rows

    seen: dict[str, set[str]] = {}
    for split, row in iter_rows(directory):
        seen.setdefault(row["group"], set()).add(split)
    return seen
