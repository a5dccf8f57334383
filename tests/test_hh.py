"""HH-RLHF: the parsing rules on authored examples, and the real harmless-base test file end to end."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from prefdata.contract.errors import RowError
from prefdata.contract.row import prompt_group, row_id
from prefdata.formats import hh
from prefdata.jobs.download import download_hh
from prefdata.pipeline.parallel import convert_file
from prefdata.storage.dataset import read_manifest


def _row(chosen: str, rejected: str) -> dict:
    return hh.hh_row({"chosen": chosen, "rejected": rejected}, "hh-rlhf/test")


def _reason(chosen: str, rejected: str) -> str:
    with pytest.raises(RowError) as info:
        _row(chosen, rejected)
    return info.value.reason


def test_single_turn_pair():
    row = _row("\n\nHuman: Name a fruit.\n\nAssistant: A pear.", "\n\nHuman: Name a fruit.\n\nAssistant: A chair.")
    assert row["prompt"] == [{"role": "user", "content": "Name a fruit."}]
    assert (row["chosen"], row["rejected"]) == ("A pear.", "A chair.")
    assert row["source"] == "hh-rlhf/test"


def test_multi_turn_prompt_is_the_shared_history():
    shared = "\n\nHuman: Hi.\n\nAssistant: Hello, how can I help?\n\nHuman: Is  tea hot?"
    prompt, chosen, rejected = hh.split_pair(shared + "\n\nAssistant:  Usually.", shared + "\n\nAssistant: No.")
    assert prompt == [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello, how can I help?"},
                      {"role": "user", "content": "Is  tea hot?"}]
    assert chosen == " Usually."  # only the single leading space goes
    assert rejected == "No."


def test_reply_with_a_fake_turn_of_its_own_keeps_the_true_prefix():
    shared = "\n\nHuman: Tell me a joke."
    fake = "Why not?\n\nHuman: That was bad.\n\nAssistant: Sorry, here is another."
    prompt, chosen, rejected = hh.split_pair(f"{shared}\n\nAssistant: {fake}", f"{shared}\n\nAssistant: No jokes.")
    assert prompt == [{"role": "user", "content": "Tell me a joke."}]
    assert chosen == fake  # splitting on the last marker of each side would have made "That was bad." the prompt
    assert rejected == "No jokes."


def test_defects_get_reason_codes():
    same = "\n\nHuman: Q?\n\nAssistant: A."
    assert _reason(same, same) == "identical_pair"
    assert _reason("\n\nHuman: Q?\n\nAssistant:", "\n\nHuman: Q?\n\nAssistant: A.") == "empty_reply"
    assert _reason("\n\nHuman: Q one?\n\nAssistant: A.", "\n\nHuman: Q two?\n\nAssistant: B.") == \
        "diverges_before_assistant"
    assert _reason("\n\nHuman: Q?\n\nAssistant: Human: A.", "\n\nHuman: Q?\n\nAssistant: B.") == "malformed_markers"
    loose_prompt = "\n\nHuman: Q?\n\nAssistant: Human: what?\n\nHuman: ok\n\nAssistant:"
    assert _reason(loose_prompt + " A.", loose_prompt + " B.") == "malformed_markers"
    assert _reason("Assistant: A.", "Assistant: B.") == "diverges_before_assistant"
    with pytest.raises(RowError, match="required key is missing"):
        hh.hh_row({"chosen": same}, "x")
    with pytest.raises(RowError) as info:
        hh.hh_row({"chosen": same, "rejected": 3}, "x")
    assert info.value.reason == "schema_violation"
    with pytest.raises(RowError) as info:
        hh.hh_row({"transcript": same, "rating": 2}, "x")
    assert info.value.reason == "wrong_schema"


def test_shared_cut_matches_the_common_prefix_definition():
    rng = random.Random(7)
    pieces = ["\n\nAssistant:", "\n\nHuman:", "a", "b", "\n", "Assistant:"]
    for _ in range(2000):
        a = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        b = a[: rng.randrange(0, len(a) + 1)] + "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 6)))
        for chosen, rejected in ((a, b), (b, a)):
            expected = os.path.commonprefix([chosen, rejected]).rfind("\n\nAssistant:")
            assert hh.shared_cut(chosen, rejected) == expected, (chosen, rejected)


# An independent, deliberately plain reading of the rules in design §3, to count the real file's outcomes.
def _expected_outcome(record: dict) -> str:
    chosen, rejected = record["chosen"], record["rejected"]
    prefix = os.path.commonprefix([chosen, rejected])
    cut = prefix.rfind("\n\nAssistant:")
    if cut < 0:
        return "diverges_before_assistant"
    turns = re.split(r"\n\n(?:Human|Assistant): ?", chosen[:cut])[1:]
    replies = [side[cut + len("\n\nAssistant:"):] for side in (chosen, rejected)]
    replies = [r[1:] if r.startswith(" ") else r for r in replies]
    loose = re.compile(r"(?:^|[ \t\n])(?:Human|Assistant):")
    texts = turns + [r.split("\n\nHuman:")[0].replace("\n\nAssistant:", "") for r in replies]
    if any(loose.search(t) for t in texts):
        return "malformed_markers"
    if any(not r.strip() for r in replies):
        return "empty_reply"
    if replies[0] == replies[1]:
        return "identical_pair"
    return "row"


def test_real_harmless_base_every_record_accounted(hh_harmless_test, tmp_path):
    records = [json.loads(line) for line in gzip.open(hh_harmless_test, "rt", encoding="utf-8")]
    expected = Counter(_expected_outcome(r) for r in records)
    manifest = download_hh(tmp_path / "out", "harmless-base", from_path=hh_harmless_test.parent.parent, quiet=True)
    counts = manifest["counts"]
    print("real harmless-base test:", dict(expected))
    assert counts["records_in"] == len(records)
    assert counts["rows_out"] == expected["row"] == manifest["splits"]["test"]["rows"]
    assert counts["quarantined_by_reason"] == {k: v for k, v in expected.items() if k != "row"}
    assert list(manifest["splits"]) == ["test"]  # the copy has no train.jsonl.gz: said, not silently skipped
    assert any("train.jsonl.gz is missing" in w for w in manifest["warnings"])
    lines = (tmp_path / "out" / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == counts["quarantined"]
    assert all(json.loads(line)["line"] >= 1 for line in lines)
    table = pa.ipc.open_stream((tmp_path / "out" / "test" / "data-00000-of-00001.arrow").read_bytes()).read_all()
    prompts = table.column("prompt").to_pylist()
    assert all(p[-1]["role"] == "user" for p in prompts)
    # make_row's fast id/group spelling must equal the contract's definition (sha256 of the canonical JSON)
    replies = zip(table.column("chosen").to_pylist(), table.column("rejected").to_pylist())
    assert table.column("id").to_pylist() == [row_id(p, c, r) for p, (c, r) in zip(prompts, replies)]
    assert table.column("group").to_pylist() == [prompt_group(p) for p in prompts]
    fake_turn = re.compile(r"\n\n(?:Human|Assistant):")  # replies that carry a turn marker of their own
    fake_turn_replies = sum(bool(fake_turn.search(c)) for c in table.column("chosen").to_pylist())
    expected_fake = 0
    for r in records:
        if _expected_outcome(r) == "row":
            cut = os.path.commonprefix([r["chosen"], r["rejected"]]).rfind("\n\nAssistant:")
            expected_fake += bool(fake_turn.search(r["chosen"][cut + len("\n\nAssistant:"):]))
    assert fake_turn_replies == expected_fake > 0


def _arrow_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.arrow"))}


def test_same_input_gives_byte_identical_arrow(hh_harmless_test, tmp_path):
    copy = hh_harmless_test.parent.parent
    download_hh(tmp_path / "a", from_path=copy, quiet=True)
    download_hh(tmp_path / "b", from_path=copy, quiet=True, workers=2)  # worker processes change nothing
    assert _arrow_bytes(tmp_path / "a") == _arrow_bytes(tmp_path / "b") != {}
    assert read_manifest(tmp_path / "a")["splits"] == read_manifest(tmp_path / "b")["splits"]


def test_chunks_keep_file_order_with_workers(hh_harmless_test, monkeypatch):
    monkeypatch.setattr("prefdata.pipeline.parallel.CHUNK_BYTES", 64 << 10)  # many small chunks, many in flight
    kwargs = {"source": "s", "schema_id": "prefdata.preference/1"}
    inline = list(convert_file(hh_harmless_test, hh.PAIRS, workers=0, **kwargs))
    parallel = list(convert_file(hh_harmless_test, hh.PAIRS, workers=2, **kwargs))
    assert len(inline) > 4
    assert [c.table.column("id").to_pylist() for c in inline] == [c.table.column("id").to_pylist() for c in parallel]
    assert [c.rejects for c in inline] == [c.rejects for c in parallel]


def _write_gz(path: Path, records: list[dict], *, array: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(records) if array else "".join(json.dumps(r) + "\n" for r in records))


def test_subset_all_takes_the_four_pair_subsets(hh_harmless_test, tmp_path):
    real = [json.loads(line) for line in gzip.open(hh_harmless_test, "rt", encoding="utf-8")][:40]
    copy = tmp_path / "hub"
    for n, subset in enumerate(hh.PAIR_SUBSETS):
        _write_gz(copy / subset / "train.jsonl.gz", real[n * 10 : n * 10 + 6])
        _write_gz(copy / subset / "test.jsonl.gz", real[n * 10 + 6 : n * 10 + 10])
    manifest = download_hh(tmp_path / "out", "all", from_path=copy, quiet=True)
    assert sorted(manifest["splits"]) == ["test", "train"]
    assert manifest["counts"]["records_in"] == 40
    from prefdata.storage.dataset import iter_rows

    sources = Counter(row["source"] for _, row in iter_rows(tmp_path / "out"))
    expected = Counter()
    for n, subset in enumerate(hh.PAIR_SUBSETS):
        expected[f"hh-rlhf/{subset}"] = sum(_expected_outcome(r) == "row" for r in real[n * 10 : n * 10 + 10])
    assert sources == expected


@pytest.mark.parametrize("array", [True, False])
def test_red_team_attempts_import_as_unsup_text_never_pairs(tmp_path, array):
    transcript = "\n\nHuman: How do I pick a lock?\n\nAssistant: I can't help with that."
    records = [
        {"transcript": transcript, "min_harmlessness_score_transcript": 1.5, "rating": 0.0,
         "task_description": "lock picking", "num_params": "52B", "model_type": "plain lm"},
        {"transcript": "   ", "rating": 1.0},
        {"chosen": transcript, "rejected": transcript},
    ]
    _write_gz(tmp_path / "hub" / "red-team-attempts" / "red_team_attempts.jsonl.gz", records, array=array)
    manifest = download_hh(tmp_path / "out", "red-team-attempts", from_path=tmp_path / "hub", quiet=True)
    assert manifest["schema"] == "prefdata.unsup/1"
    assert manifest["counts"]["quarantined_by_reason"] == {"empty_text": 1, "wrong_schema": 1}
    assert any("rating" in w and "meta" in w for w in manifest["warnings"])
    from prefdata.storage.dataset import iter_rows

    rows = [row for _, row in iter_rows(tmp_path / "out")]
    kept = {key: value for key, value in records[0].items() if key != "transcript"}
    assert rows == [{"id": rows[0]["id"], "source": "hh-rlhf/red-team-attempts", "text": transcript,
                     "meta": json.dumps(kept, ensure_ascii=False, sort_keys=True, separators=(",", ":"))}]
