"""Bad input to `prefdata import`: one line on stderr naming file, line and field, non-zero exit, no traceback,
and no output directory (or half-written temporary sibling) left behind. Row-level defects go to quarantine."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from support import run_cli

from prefdata.storage.dataset import load, read_manifest

HH = {"chosen": "\n\nHuman: Is it cold?\n\nAssistant: Take a coat.",
      "rejected": "\n\nHuman: Is it cold?\n\nAssistant: Who cares."}
STANDARD = [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}.", "rejected": f"Bad answer {i}."}
            for i in range(3)]


def run(capsys, *argv) -> tuple[int, str, str]:
    return run_cli(capsys, "import", *argv)


def jsonl(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def assert_refused(capsys, tmp_path, *argv, expect: str, where: str) -> str:
    """The run fails with one error line that starts with ``prefdata: error: WHERE`` and leaves no output behind."""
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, *argv, "--out", out_dir, "--quiet")
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"prefdata: error: {where}"), lines[0]
    assert expect in lines[0], lines[0]
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    return lines[0]


def test_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert_refused(capsys, tmp_path, path, expect="is empty", where=f"{path}: ")


def test_empty_after_decompression(tmp_path, capsys):
    path = tmp_path / "empty.jsonl.gz"
    path.write_bytes(gzip.compress(b""))
    assert_refused(capsys, tmp_path, path, expect="empty after decompression", where=f"{path}: ")


def test_blank_lines_only(tmp_path, capsys):
    path = tmp_path / "blank.jsonl"
    path.write_text("\n\n  \n", encoding="utf-8")
    assert_refused(capsys, tmp_path, path, expect="holds no records", where=f"{path}: ")


def test_truncated_json_array(tmp_path, capsys):
    path = tmp_path / "cut.json"
    path.write_text("[\n" + json.dumps(HH) + ',\n{"chosen": "\\n\\nHum', encoding="utf-8")
    assert_refused(capsys, tmp_path, path, expect="truncated or invalid JSON", where=f"{path}:3: ")


def test_truncated_jsonl_last_line_is_quarantined_or_fails(tmp_path, capsys):
    path = jsonl(tmp_path / "cut.jsonl", [HH, HH | {"rejected": "\n\nHuman: Is it cold?\n\nAssistant: No."},
                                          '{"chosen": "\\n\\nHum'])
    code, out, _ = run(capsys, path, "--out", tmp_path / "q", "-q")
    assert code == 0 and "bad_json 1" in out
    quarantined = [json.loads(line) for line in (tmp_path / "q" / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], q["reason"]) for q in quarantined] == [(3, "bad_json")]
    assert_refused(capsys, tmp_path, path, "--on-error", "fail", expect="(bad_json)", where=f"{path}:3: ")


@pytest.mark.parametrize("content", ["42\n", '"just a string"\n', "true\n", "null\n"])
def test_top_level_value_that_is_not_an_object_or_array(tmp_path, capsys, content):
    for name in ("data.json", "data.jsonl"):
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        assert_refused(capsys, tmp_path, path, expect="not an object" if name.endswith("l") else "expected a JSON array",
                       where=f"{path}:1: ")


def test_a_single_json_object_is_not_a_dataset(tmp_path, capsys):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(HH, indent=2), encoding="utf-8")
    # A pretty-printed object spans lines, so as JSON Lines its first line is broken JSON.
    assert_refused(capsys, tmp_path, path, expect="no readable record", where=f"{path}:1: ")


def test_row_missing_a_required_key(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [STANDARD[0], STANDARD[1], {"prompt": "Q?", "chosen": "A."}])
    code, out, _ = run(capsys, path, "--out", tmp_path / "q", "-q")
    assert code == 0 and "missing_field 1" in out
    entry = json.loads((tmp_path / "q" / "quarantine.jsonl").read_text())
    assert (entry["line"], entry["reason"], entry["record"]) == (3, "missing_field", {"prompt": "Q?", "chosen": "A."})
    assert_refused(capsys, tmp_path, path, "--on-error", "fail", expect="rejected: required key is missing",
                   where=f"{path}:3: ")


def test_number_where_a_string_is_required(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [STANDARD[0], {"prompt": "Q?", "chosen": 12, "rejected": "A."}])
    code, out, _ = run(capsys, path, "--out", tmp_path / "q", "-q")
    assert code == 0 and "schema_violation 1" in out
    assert_refused(capsys, tmp_path, path, "--on-error", "fail", expect="chosen: is a number, not a string",
                   where=f"{path}:2: ")


def test_invalid_utf8_in_jsonl_is_a_bad_record(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(STANDARD[0]).encode() + b'\n{"prompt": "\xff", "chosen": "a", "rejected": "b"}\n')
    code, out, _ = run(capsys, path, "--out", tmp_path / "q", "-q")
    assert code == 0 and "bad_utf8 1" in out
    assert_refused(capsys, tmp_path, path, "--on-error", "fail", expect="invalid UTF-8", where=f"{path}:2: ")


def test_invalid_utf8_in_csv_names_the_line(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_bytes(b"prompt,chosen,rejected\nq,a,b\nq2,\xe4\xbd,b\n")
    assert_refused(capsys, tmp_path, path, expect="invalid UTF-8", where=f"{path}:3: ")


def test_utf8_bom_is_read_not_refused(tmp_path, capsys):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in STANDARD).encode())
    code, out, err = run(capsys, path, "--out", tmp_path / "o", "-q")
    assert code == 0, err
    rows = load(tmp_path / "o")["train"]
    assert rows["chosen"] == [r["chosen"] for r in STANDARD] and rows[0]["prompt"][0]["content"] == "Question 0?"


def test_crlf_line_ends_are_read_not_refused(tmp_path, capsys):
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"prompt,chosen,rejected\r\n" + b"".join(
        f'{r["prompt"]},"{r["chosen"]}\r\nsecond line",{r["rejected"]}\r\n'.encode() for r in STANDARD))
    code, _, err = run(capsys, path, "--out", tmp_path / "o", "-q")
    assert code == 0, err
    rows = load(tmp_path / "o")["train"]
    # Line ends inside a quoted cell are data and kept as written; record separators are not.
    assert rows["rejected"] == [r["rejected"] for r in STANDARD]
    assert rows["chosen"] == [r["chosen"] + "\r\nsecond line" for r in STANDARD]


def test_ten_megabyte_line(tmp_path, capsys):
    big = "word " * (2 * 1024 * 1024)  # 10 MiB of text in one JSON line
    path = jsonl(tmp_path / "big.jsonl", [STANDARD[0], {"prompt": "Long?", "chosen": big, "rejected": "Short."}])
    assert path.stat().st_size > 10 * 1024 * 1024
    code, _, err = run(capsys, path, "--out", tmp_path / "o", "-q")
    assert code == 0, err
    assert read_manifest(tmp_path / "o")["counts"]["rows_out"] == 2
    assert load(tmp_path / "o")["train"][1]["chosen"] == big
    code, out, _ = run(capsys, path, "--out", tmp_path / "small", "-q", "--max-record-bytes", 1_000_000)
    assert code == 0 and "record_too_large 1" in out
    entry = json.loads((tmp_path / "small" / "quarantine.jsonl").read_text())
    assert (entry["line"], entry["reason"]) == (2, "record_too_large")


def test_git_lfs_pointer(tmp_path, capsys):
    path = tmp_path / "train.jsonl"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 40960\n")
    assert_refused(capsys, tmp_path, path, expect="Git LFS pointer", where=f"{path}: ")


def test_corrupt_gzip(tmp_path, capsys):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(("".join(json.dumps(HH) + "\n" for _ in range(50))).encode())[:80])
    assert_refused(capsys, tmp_path, path, expect="corrupt or truncated gzip", where=f"{path}: ")


def test_a_directory_and_a_missing_path(tmp_path, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    assert_refused(capsys, tmp_path, folder, expect="is a directory", where=f"{folder}: ")
    missing = tmp_path / "missing.jsonl"
    assert_refused(capsys, tmp_path, missing, expect="no such file", where=f"{missing}: ")


def test_a_bad_second_file_leaves_nothing_behind(tmp_path, capsys):
    good = jsonl(tmp_path / "good.jsonl", STANDARD)
    bad = tmp_path / "bad.json"
    bad.write_text("[" + json.dumps(STANDARD[0]) + ",", encoding="utf-8")
    assert_refused(capsys, tmp_path, good, bad, "--format", "trl-standard", expect="truncated", where=f"{bad}:1: ")


def test_existing_output_directory_needs_overwrite(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", STANDARD)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, _, err = run(capsys, path, "--out", out_dir, "-q")
    assert code == 2 and err.strip() == f"prefdata: error: {out_dir}: exists; pass --overwrite to replace it"
    code, _, err = run(capsys, path, "--out", out_dir, "-q", "--overwrite")
    assert code == 2 and "not a prefdata dataset directory" in err  # never clobbers a folder prefdata did not write
    assert (out_dir / "keep.txt").read_text() == "mine"
    (out_dir / "keep.txt").unlink()
    out_dir.rmdir()
    assert run(capsys, path, "--out", out_dir, "-q")[0] == 0
    assert run(capsys, path, "--out", out_dir, "-q")[0] == 2
    assert run(capsys, path, "--out", out_dir, "-q", "--overwrite")[0] == 0


def test_plain_text_is_refused_as_preference_data(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("just prose\n", encoding="utf-8")
    assert_refused(capsys, tmp_path, path, expect="--kind unsup", where=f"{path}: ")


def test_unknown_format_name(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", STANDARD)
    assert_refused(capsys, tmp_path, path, "--format", "nope", expect="unknown format 'nope'", where="")


def test_ambiguous_input_is_refused_listing_candidates(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b", "user_input": "q",
                                         "completion": "a"}])
    line = assert_refused(capsys, tmp_path, path, expect="ambiguous format", where=f"{path}:1: ")
    assert "chatllama-actor" in line and "trl-standard" in line


def test_bad_map_option_is_a_usage_error(tmp_path, capsys):
    path = jsonl(tmp_path / "d.jsonl", STANDARD)
    code, _, err = run(capsys, path, "--out", tmp_path / "o", "--map", "prompt")
    assert code == 2 and "is not FIELD=COLUMN" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_lone_surrogate_escapes_are_quarantined_and_read_back_unchanged(tmp_path):
    import gzip

    from prefdata.jobs.download import download_hh
    from prefdata.jobs.importer import import_files

    good = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: bye"})
    broken = '{"chosen": "\\n\\nHuman: hi \\ud800\\n\\nAssistant: a", "rejected": "\\n\\nHuman: hi \\ud800\\n\\nAssistant: b"}'
    text = "\n".join([good, broken, good.replace("hello", "hey")]) + "\n"
    (tmp_path / "in.jsonl").write_text(text, encoding="utf-8")
    (tmp_path / "hub" / "harmless-base").mkdir(parents=True)
    with gzip.open(tmp_path / "hub" / "harmless-base" / "test.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(text)
    manifests = [
        import_files([tmp_path / "in.jsonl"], tmp_path / "imported", quiet=True),
        download_hh(tmp_path / "downloaded", "harmless-base", from_path=tmp_path / "hub", quiet=True),
    ]
    for manifest, out in zip(manifests, ("imported", "downloaded")):
        assert manifest["counts"]["quarantined_by_reason"] == {"bad_unicode": 1}
        assert manifest["counts"]["rows_out"] == 2
        (line,) = (tmp_path / out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
        assert json.loads(line)["record"] == json.loads(broken)
