"""Issue #11 item 6: for every export that `import` also reads, `import(export(D))` gives back the same rows and ids.

Generated rows: Chinese and other non-ASCII text, system turns, multi-turn prompts, the null sides of demonstrations
and prompt-only rows, and the /2 shapes: continuations of several messages, tool calls with their results, unpaired
(labelled) rows.

Covered: trl, every shape (pairs and continuations in rm_train.jsonl, unpaired rows in rm_train_unpaired.jsonl, sft,
ppo); sharegpt, every row whose replies are plain text (pairs, demonstrations, prompts, unpaired rows); dschat rm, pairs
of plain text. Not covered, because the format cannot carry them back: sharegpt tool calls (LLaMA-Factory's
function_call turn has no call id, its observation no tool_call_id, so the row id cannot come back) and replies of
several messages (ranking takes one message per reply; two gpt turns in a row break its alternation: left out);
dschat and chatllama continuations (flattened to text) and unpaired rows (left out); chatllama (import reads
`user_input` as one user turn); dschat sft and ppo (import's dschat reader needs `rejected`, which DS-Chat's phase 1 and
3 files leave null); the canonical jsonl / parquet exports (copies of the store, which `import` does not read as a
format: a row without its rejected side fits none).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from split_helpers import write_dataset

from prefdata.contract.row import make_row
from prefdata.jobs.export import export_dataset
from prefdata.jobs.importer import iter_parsed
from prefdata.pipeline.records import ParsedRow

# Words, not arbitrary characters: an export renders text, and a reply that itself holds "\n\nHuman:" cannot be told
# from the rendering around it (import quarantines it as malformed markers, by design).
WORDS = st.sampled_from(["water", "the", "fern", "in", "winter", "用一句话", "解释", "机器学习", "café", "naïve",
                         "ß", "😀", "42", "?", "line\nbreak"])
TEXT = st.lists(WORDS, min_size=1, max_size=6).map(" ".join)


@st.composite
def prompts(draw) -> list[dict[str, str]]:
    turns = draw(st.integers(0, 2))
    prompt = [{"role": "system", "content": draw(TEXT)}] if draw(st.booleans()) else []
    for _ in range(turns):
        prompt += [{"role": "user", "content": draw(TEXT)}, {"role": "assistant", "content": draw(TEXT)}]
    return [*prompt, {"role": "user", "content": draw(TEXT)}]


@st.composite
def continuations(draw) -> str | list[dict]:
    """A reply: plain text, two assistant messages, or a tool call, its result and the answer."""
    shape = draw(st.sampled_from(["text", "text", "two", "tool"]))
    if shape == "text":
        return draw(TEXT)
    if shape == "two":
        return [{"role": "assistant", "content": draw(TEXT)}, {"role": "assistant", "content": draw(TEXT)}]
    call_id, name = f"call_{draw(st.integers(0, 9))}", draw(st.sampled_from(["weather", "天气"]))
    arguments = json.dumps({"city": draw(TEXT)}, ensure_ascii=False)
    calls = json.dumps([{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
                       ensure_ascii=False)
    return [{"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "content": draw(TEXT), "tool_call_id": call_id, "name": name},
            {"role": "assistant", "content": draw(TEXT)}]


@st.composite
def datasets(draw) -> dict[str, list[dict]]:
    """Pairs and unpaired rows in rm_train, demonstrations in sft_train, prompts in ppo_train (each phase's kinds)."""
    def rows(n: int, sides: int, unpaired: bool = False) -> list[dict]:
        made: dict[str, dict] = {}
        for _ in range(n):
            replies = draw(st.lists(continuations(), min_size=sides, max_size=sides, unique_by=repr))
            if unpaired:
                label = draw(st.booleans())
                row = make_row(draw(prompts()), *([replies[0], None] if label else [None, replies[0]]), label=label,
                               source="custom/generated")
            else:
                row = make_row(draw(prompts()), *replies, source="custom/generated")
            made[row["id"]] = row
        return list(made.values())

    return {"rm_train": rows(draw(st.integers(1, 3)), 2) + rows(draw(st.integers(0, 2)), 1, unpaired=True),
            "sft_train": rows(draw(st.integers(1, 3)), 1), "ppo_train": rows(draw(st.integers(1, 3)), 0)}


def reimported(path: Path) -> list[dict]:
    parsed = list(iter_parsed(path))
    assert all(isinstance(p, ParsedRow) for p in parsed), [p for p in parsed if not isinstance(p, ParsedRow)][:1]
    return [p.row for p in parsed]


def content(row: dict) -> tuple:
    return (row["id"], row["group"], row["prompt"], row["chosen"], row["rejected"], row.get("chosen_turns"),
            row.get("rejected_turns"), row.get("label"))


def plain(row: dict) -> bool:
    return row.get("chosen_turns") is None and row.get("rejected_turns") is None


def written(report: dict, folder: Path, name: str) -> list[dict]:
    """The rows import reads back from every file a split was written to (main file, then the unpaired one)."""
    files = [report["splits"][name][key] for key in ("file", "unpaired_file") if report["splits"][name].get(key)]
    return [row for file in files for row in reimported(folder / file)]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_import_of_an_export_gives_back_the_same_rows_and_ids(data):
    with tempfile.TemporaryDirectory() as tmp:
        source = write_dataset(Path(tmp) / "in", data)
        for format, kept in (("trl", lambda row: True), ("sharegpt", plain)):
            report = export_dataset(source, Path(tmp) / format, format=format, quiet=True)
            for name, rows in data.items():
                expected = [r for r in rows if kept(r)]
                expected = [r for r in expected if r.get("label") is None] + [r for r in expected if r.get("label")
                                                                              is not None]  # main file, then unpaired
                back = [r for r in written(report, Path(tmp) / format, name) if kept(r)]
                assert [content(r) for r in back] == [content(r) for r in expected], (format, name)
        pairs = [r for r in data["rm_train"] if plain(r) and r.get("label") is None]
        if not pairs:
            return
        source = write_dataset(Path(tmp) / "in2", {"rm_train": pairs, "rm_eval": pairs[:1]})
        export_dataset(source, Path(tmp) / "ds", format="dschat", quiet=True)
        back = reimported(Path(tmp) / "ds" / "rm" / "train.json")
        assert [content(r) for r in back] == [content(r) for r in pairs], "dschat"
