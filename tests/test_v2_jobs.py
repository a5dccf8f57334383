"""What validate and stats do with `prefdata.preference/2` directories and with /1 ones (read as /2)."""

from __future__ import annotations

from split_helpers import pair, unpaired
from support import run_cli, write_dataset
from test_storage_v2 import CALL, TURNS, Q, write_v1_directory

from prefdata.contract.row import make_row
from prefdata.jobs.stats import dataset_stats, write_data_card
from prefdata.jobs.validate import validate_directory


def kinds_rows() -> list[dict]:
    tool_prompt = [*Q, {"role": "assistant", "content": "", "tool_calls": CALL}, {"role": "tool", "content": "42"},
                   {"role": "user", "content": "So?"}]
    return [pair(1), make_row(Q, TURNS, "41.", source="s"), unpaired(2, True), unpaired(3, False), unpaired(4, False),
            make_row(tool_prompt, "42.", source="s"), make_row(Q, "42.", chosen_score=1.0, source="s"),
            make_row(Q, source="s")]


def test_validate_says_which_version_it_checked(tmp_path, capsys):
    v2 = write_dataset(tmp_path / "v2", kinds_rows())
    v1 = write_v1_directory(tmp_path / "v1", [pair(1), pair(2)])
    code, out, err = run_cli(capsys, "validate", v2)
    assert code == 0, err
    assert out.strip().endswith("valid; checked against prefdata.preference/2")
    code, out, err = run_cli(capsys, "validate", v1)
    assert code == 0, err
    assert out.strip().endswith("valid; checked against prefdata.preference/1")
    assert validate_directory(v1, out=None).versions == {str(v1): "prefdata.preference/1"}


def test_validate_checks_stored_v2_rows_with_the_v2_rules(tmp_path):
    row = make_row(Q, TURNS, "41.", source="s")
    broken = [{**row, "label": True},  # a label on a pair
              {**row, "chosen": "42."},  # the chosen reply as text and as turns
              {**row, "chosen_turns": [{"role": "user", "content": "42."}, TURNS[2]]}]
    report = validate_directory(write_dataset(tmp_path / "d", broken), out=None)
    assert dict(report.reasons) == {"bad_label": 1, "bad_continuation": 2}
    assert report.summary().endswith("checked against prefdata.preference/2")


def test_stats_count_kinds_unpaired_labels_and_tools(tmp_path):
    directory = write_dataset(tmp_path / "d", kinds_rows())
    split = dataset_stats(directory)["splits"]["train"]
    assert split["kinds"] == {"pair": 2, "demonstration": 1, "scored": 1, "prompt_only": 1, "unpaired": 3}
    assert (split["pairs"], split["with_reply_only"], split["prompt_only"]) == (2, 2, 1)
    assert split["unpaired"] == {"desirable": 1, "undesirable": 2}
    assert (split["multi_message_replies"], split["tool_messages"], split["tool_calls"]) == (1, 2, 2)
    assert split["rows_serving"] == {"sft": 4, "rm": 2, "ppo": 8}
    # a reply given as turns is as long as its contents, one per line: "" + "42" + "It is 42." -> 2 line ends + 11
    only_turns = dataset_stats(write_dataset(tmp_path / "t", [kinds_rows()[1]]))["splits"]["train"]
    assert only_turns["chars"]["chosen"]["max"] == len("\n42\nIt is 42.")
    card = (directory / "README.md")
    write_data_card(directory)
    assert "## Rows per kind" in card.read_text(encoding="utf-8")
    assert "| train | 2 | 1 | 1 | 1 | 3 (1 / 2) | 1 | 2 | 2 |" in card.read_text(encoding="utf-8")


def test_split_export_and_stats_read_a_v1_directory_as_its_v2_twin(tmp_path, capsys):
    """A /1 directory (0.2.0's schema, written here) and the same rows written as /2 give the same split (ids and
    parts), the same export and the same figures; what split writes is /2."""
    from split_helpers import demo, prompt_only, scored

    from prefdata.storage.dataset import iter_rows, read_manifest

    rows = [pair(i) for i in range(30)] + [demo(i) for i in range(10)] + [prompt_only(i) for i in range(10)] + [
        scored("Rate this", f"Reply {i}.", float(i)) for i in range(4)]
    v1 = write_v1_directory(tmp_path / "v1", rows)
    v2 = write_dataset(tmp_path / "v2", rows)
    for name in ("v1", "v2"):
        code, _, err = run_cli(capsys, "split", tmp_path / name, "--seed", "7", "--out", tmp_path / f"{name}-split",
                               "--quiet")
        assert code == 0, err
        code, _, err = run_cli(capsys, "export", tmp_path / name, "--format", "jsonl", "--out",
                               tmp_path / f"{name}-jsonl", "--quiet")
        assert code == 0, err
    assert read_manifest(tmp_path / "v1-split")["schema"] == "prefdata.preference/2"
    assert [(split, row["id"]) for split, row in iter_rows(tmp_path / "v1-split")] == [
        (split, row["id"]) for split, row in iter_rows(tmp_path / "v2-split")]
    assert {row["id"] for _, row in iter_rows(tmp_path / "v1-split")} >= {row["id"] for row in rows[:50]}
    assert (tmp_path / "v1-jsonl" / "train.jsonl").read_bytes() == (tmp_path / "v2-jsonl" / "train.jsonl").read_bytes()
    figures = [dataset_stats(d)["splits"]["train"] for d in (v1, v2)]
    assert figures[0] == figures[1] and figures[0]["kinds"]["pair"] == 30
