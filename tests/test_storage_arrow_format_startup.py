"""What a `prefdata download` / `import` process imports before it does any work (issue #9, the benchmark
`bench/import_hh.py --whole-process`): not `datasets` (shards are written by `prefdata.storage.arrow_format`), not the
Hub client for a local copy, and no pandas in the parallel workers."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys


def test_downloading_and_importing_import_neither_datasets_nor_the_hub_client(tmp_path):
    """The point of the hand-written writer: the CLI's download/import path stays clear of `datasets`' import."""
    hub_copy = tmp_path / "hh" / "harmless-base"
    hub_copy.mkdir(parents=True)
    record = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    (hub_copy / "test.jsonl.gz").write_bytes(gzip.compress(json.dumps(record).encode() + b"\n"))
    code = ("import sys, runpy\n"
            "try:\n    runpy.run_module('prefdata.cli', run_name='__main__')\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('datasets', 'huggingface_hub')))\n")
    for argv in (["download", "hh-rlhf", "--from", str(tmp_path / "hh"), "--out", str(tmp_path / "d")],
                 ["import", "--sample", "--out", str(tmp_path / "i")]):
        done = subprocess.run([sys.executable, "-c", code, *argv, "--quiet"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_worker_converts_hh_lines_without_importing_pandas():
    """`_start_worker` then the worker's own task, `convert_block`, on HH lines with a reject among them."""
    code = """
import sys
import pyarrow as pa
from prefdata.contract.row import PREFERENCE_SCHEMA_ID
from prefdata.formats.hh import PAIRS
from prefdata.pipeline.parallel import _start_worker, convert_block
_start_worker()
chunk = convert_block(sys.stdin.buffer.read(), 1, "f.jsonl", PAIRS, "hh-rlhf/x", PREFERENCE_SCHEMA_ID)
print(chunk.table.num_rows, len(chunk.rejects), "pandas" in sys.modules)
import pandas  # still importable, and pyarrow's pandas conversions still work
print(pa.array(pandas.Series([1.5])).type, pa.table({"a": [1]}).to_pandas()["a"].tolist())
"""
    pair = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    lines = [json.dumps(pair), json.dumps({**pair, "rejected": pair["chosen"]}), json.dumps(pair).replace("hi", "yo")]
    done = subprocess.run([sys.executable, "-c", code], input="\n".join(lines) + "\n", capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["2 1 False", "double [1]"]
