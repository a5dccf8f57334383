"""Hostile input (issue #10, classes 3 and 6) driven through the CLI: never a traceback or a signal, never a silent
result. Records nested too deep are quarantined as ``too_deep`` before any recursive decoder sees them."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_openai_server import FakeOpenAI
from support import run_cli, write_dataset

from prefdata.contract.nesting import MAX_DEPTH, too_deep
from prefdata.contract.row import PREFERENCE_SCHEMA_ID
from prefdata.storage.dataset import iter_rows, read_manifest

HH = {"chosen": "\n\nHuman: Is it cold?\n\nAssistant: Take a coat.",
      "rejected": "\n\nHuman: Is it cold?\n\nAssistant: Who cares."}
PAIR = {"prompt": "Is it cold?", "chosen": "Take a coat.", "rejected": "Who cares."}
DEPTH = 100_000  # deep enough to overflow every recursive decoder (pyarrow's JSON reader: SIGSEGV)


def deep(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def deep_line(record: dict, field: str = "chosen") -> str:
    """``record`` as one JSON line whose ``field`` holds arrays nested ``DEPTH`` deep."""
    return json.dumps({**record, field: None}).replace("null", deep())


def quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]


def refused(capsys, *argv) -> str:
    """The run exits 2 with one line on stderr and no traceback; that line."""
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_too_deep_scan():
    assert not too_deep(b'{"a": [[1]], "b": "[[[[[[["}')
    assert not too_deep("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert too_deep("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert too_deep(b"[" * (MAX_DEPTH + 1))  # cut off: still deep before the decoder fails
    assert not too_deep(b'["' + b"[" * (2 * MAX_DEPTH) + b'"]')  # brackets inside a string do not nest
    assert not too_deep(b'["\\"' + b"[" * (2 * MAX_DEPTH) + b'"]')  # an escaped quote does not end the string


def test_import_jsonl_quarantines_too_deep(tmp_path, capsys):
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join([json.dumps(HH), deep_line(HH), json.dumps(HH | {"chosen": HH["chosen"] + "!"})]) + "\n")
    code, _, err = run_cli(capsys, "import", path, "--format", "trl-implicit", "--out", tmp_path / "o", "-q")
    assert code == 0, err
    [entry] = quarantine(tmp_path / "o")
    assert (entry["line"], entry["reason"]) == (2, "too_deep")
    assert read_manifest(tmp_path / "o")["counts"]["rows_out"] == 2
    line = refused(capsys, "import", path, "--format", "trl-implicit", "--on-error", "fail", "--out", tmp_path / "f", "-q")
    assert line.startswith(f"prefdata: error: {path}:2: ") and "(too_deep)" in line


def test_import_json_array_quarantines_too_deep_and_reads_on(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[\n" + ",\n".join([json.dumps(PAIR), deep_line(PAIR), deep(), json.dumps(PAIR | {"chosen": "No."})])
                    + "\n]\n")
    code, _, err = run_cli(capsys, "import", path, "--format", "trl-standard", "--out", tmp_path / "o", "-q")
    assert code == 0, err
    assert [(q["line"], q["reason"]) for q in quarantine(tmp_path / "o")] == [(3, "too_deep"), (4, "too_deep")]
    assert [row["chosen"] for _, row in iter_rows(tmp_path / "o")] == ["Take a coat.", "No."]


def test_csv_cell_of_deep_json_is_quarantined(tmp_path, capsys):
    path = tmp_path / "deep.csv"
    user = '"[{""role"": ""user"", ""content"": ""q""}]"'
    good, bad = (f'"[{{""role"": ""assistant"", ""content"": ""{text}""}}]"' for text in ("Yes.", "No."))
    path.write_text(f"prompt,chosen,rejected\n{user},{good},{bad}\n"
                    f'"[{{""role"": ""user"", ""content"": {deep()}}}]",{good},{bad}\n')
    code, _, err = run_cli(capsys, "import", path, "--format", "trl-conversational", "--out", tmp_path / "o", "-q")
    assert code == 0, err
    assert [(q["line"], q["reason"]) for q in quarantine(tmp_path / "o")] == [(3, "too_deep")]


def test_validate_and_synthesize_seeds_survive_deep_records(tmp_path, capsys):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(PAIR) + "\n" + deep_line(PAIR) + "\n")
    code, out, err = run_cli(capsys, "validate", path)
    assert code == 1 and "Traceback" not in err + out and "too_deep" in out + err
    code, out, err = run_cli(capsys, "synthesize", "--kind", "rlhf", "--seeds", path, "--n", "2", "--model", "m", "--dry-run",
                             "--out", tmp_path / "s")
    assert code == 0 and "Traceback" not in err, err


def test_download_hh_with_a_deep_line_does_not_crash(tmp_path):
    """pyarrow's JSON reader overflowed its C stack here (exit 139): the depth is checked before it runs."""
    test_file = tmp_path / "hub" / "harmless-base" / "test.jsonl.gz"
    test_file.parent.mkdir(parents=True)
    test_file.write_bytes(gzip.compress(("\n".join([json.dumps(HH), deep_line(HH)]) + "\n").encode()))
    done = subprocess.run([sys.executable, "-m", "prefdata.cli", "download", "hh-rlhf", "--from", str(tmp_path / "hub"),
                           "--out", str(tmp_path / "o"), "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [(q["line"], q["reason"]) for q in quarantine(tmp_path / "o")] == [(2, "too_deep")]


def test_parallel_workers_quarantine_too_deep(tmp_path):
    from prefdata.formats.hh import PAIRS
    from prefdata.pipeline.parallel import convert_file

    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join([json.dumps(HH), deep_line(HH)]) + "\n")
    [chunk] = convert_file(path, PAIRS, source="hh", schema_id=PREFERENCE_SCHEMA_ID, workers=1)
    assert chunk.table.num_rows == 1 and [(r.line, r.reason) for r in chunk.rejects] == [(2, "too_deep")]


def test_csv_duplicated_column_is_refused(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    path.write_text("prompt,chosen,chosen,rejected\nq,a,b,c\n")
    line = refused(capsys, "import", path, "--out", tmp_path / "o", "-q")
    assert line == f"prefdata: error: {path}:1: the CSV header names column 'chosen' twice (columns 2 and 3)"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("container", ["json", "csv", "parquet"])
def test_max_record_bytes_holds_in_every_container(tmp_path, capsys, container):
    records = [PAIR, PAIR | {"chosen": "x" * 5000}, PAIR | {"chosen": "No."}]
    path = tmp_path / f"in.{container}"
    if container == "json":
        path.write_text(json.dumps(records, indent=1))
    elif container == "csv":
        path.write_text("prompt,chosen,rejected\n" + "".join(f"{r['prompt']},{r['chosen']},{r['rejected']}\n"
                                                            for r in records))
    else:
        pq.write_table(pa.Table.from_pylist(records), path)
    code, _, err = run_cli(capsys, "import", path, "--format", "trl-standard", "--max-record-bytes", "1000",
                           "--out", tmp_path / "o", "-q")
    assert code == 0, err
    [entry] = quarantine(tmp_path / "o")
    assert entry["reason"] == "record_too_large"
    assert [row["chosen"] for _, row in iter_rows(tmp_path / "o")] == ["Take a coat.", "No."]


def test_bit_flipped_parquet_is_one_line(tmp_path, capsys):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([PAIR | {"chosen": f"Answer number {i}."} for i in range(2000)]), path,
                   compression="snappy")
    clean = bytearray(path.read_bytes())
    seen_refused = 0
    for offset in range(4, len(clean) - 8, max(1, len(clean) // 97)):
        damaged = bytearray(clean)
        damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))
        out = tmp_path / f"o{offset}"
        code, _, err = run_cli(capsys, "import", path, "--format", "trl-standard", "--out", out, "-q")
        assert "Traceback" not in err and code in (0, 2), err
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and str(path) in err and not out.exists()
            seen_refused += 1
    assert seen_refused


@pytest.mark.parametrize("verb", ["score", "synthesize"])
def test_everything_quarantined_still_publishes_a_valid_directory(tmp_path, capsys, verb):
    dataset = write_dataset(tmp_path / "in", _rows())
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps(PAIR) + "\n")
    with FakeOpenAI(reply=lambda body: "?") as server:  # a judge that never answers a score; no usable prompt
        common = ["--model", "m", "--base-url", server.url, "--cache", tmp_path / "c.sqlite", "--out", tmp_path / "o",
                  "-q"]
        if verb == "score":
            code, _, err = run_cli(capsys, "score", dataset, *common)
        else:
            code, _, err = run_cli(capsys, "synthesize", "--kind", "rlhf", "--seeds", seeds, "--n", "2", *common)
    assert code == 0, err
    assert read_manifest(tmp_path / "o")["counts"]["rows_out"] == 0
    code, out, err = run_cli(capsys, "validate", tmp_path / "o")
    assert code == 0, out + err


def _rows() -> list[dict]:
    from prefdata.contract.row import make_row

    return [make_row([{"role": "user", "content": f"Question {i}?"}], f"Good {i}.", f"Bad {i}.", source="t")
            for i in range(3)]


@pytest.mark.parametrize("value", ["nan,10", "0,nan", "0,inf", "-inf,10"])
def test_score_range_must_be_finite(tmp_path, capsys, value):
    dataset = write_dataset(tmp_path / "in", _rows())
    line = refused(capsys, "score", dataset, "--out", tmp_path / "o", "--model", "m", "--dry-run",
                   "--score-range", value)
    assert "--score-range" in line and "finite" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_named_not_called_empty(tmp_path, capsys):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    line = refused(capsys, "import", fifo, "--out", tmp_path / "o", "-q")
    assert line.startswith(f"prefdata: error: {fifo}: ") and "pipe (FIFO)" in line and "empty" not in line


def test_symlink_loop_is_named(tmp_path, capsys):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    line = refused(capsys, "import", loop, "--out", tmp_path / "o", "-q")
    assert line.startswith(f"prefdata: error: {loop}: ") and "symbolic links" in line and "no such file" not in line


@pytest.mark.parametrize("target", ["templates.json", "schema", "manifest", "quarantine"])
def test_validate_deep_documents_is_a_finding_not_a_traceback(tmp_path, capsys, target):
    document = '{"a": ' + deep() + "}"
    if target == "templates.json":
        argv = [tmp_path / "templates.json"]
        argv[0].write_text(document)
    elif target == "schema":
        data = tmp_path / "pairs.jsonl"
        data.write_text(json.dumps(PAIR) + "\n")
        (tmp_path / "schema.json").write_text(document)
        argv = [data, "--schema", tmp_path / "schema.json"]
    else:
        dataset = write_dataset(tmp_path / "d", _rows())
        if target == "manifest":
            (dataset / "prefdata.json").write_text(document)
        else:
            (dataset / "quarantine.jsonl").write_text(document + "\n")
        argv = [dataset]
    code, out, err = run_cli(capsys, "validate", *argv)
    assert code in (1, 2) and "Traceback" not in out + err and "too_deep" in out + err, out + err


def test_phases_refuse_plain_text_rows():
    from prefdata.contract.errors import PrefdataError
    from prefdata.contract.phases import require_preference_rows
    from prefdata.contract.row import UNSUP_SCHEMA_ID

    require_preference_rows(PREFERENCE_SCHEMA_ID, "export --format trl", "d")
    with pytest.raises(PrefdataError, match=r"^d: holds prefdata.unsup/1 rows .*; export --format trl needs"):
        require_preference_rows(UNSUP_SCHEMA_ID, "export --format trl", "d")


@pytest.mark.parametrize("fmt", ["trl", "dschat", "chatllama"])
def test_export_of_plain_text_rows_to_a_chat_format_is_refused(tmp_path, capsys, fmt):
    text = tmp_path / "docs.txt"
    text.write_text("One document.\n\nAnother one.\n")
    assert run_cli(capsys, "import", text, "--kind", "unsup", "--out", tmp_path / "u", "-q")[0] == 0
    line = refused(capsys, "export", tmp_path / "u", "--format", fmt, "--out", tmp_path / "e")
    assert "prefdata.unsup/1 rows" in line and not (tmp_path / "e").exists()
