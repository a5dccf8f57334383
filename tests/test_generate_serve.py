"""`generate` against a real OpenAI-compatible server, `transformers serve`, for protocol behaviour we did not write:
finish reasons, usage, per-request seeds. Skipped unless the serving extra is installed (pip install
'transformers[serving]': FastAPI and Uvicorn). A tiny random GPT-2 with a chat template is built here; nothing is
downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support import write_dataset

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from trainer_helpers import free_port, subprocess_env, train_tokenizer  # noqa: E402

from prefdata.contract.row import make_row, row_meta  # noqa: E402
from prefdata.jobs.generate import generate  # noqa: E402
from prefdata.llm.engine import LLMConfig  # noqa: E402
from prefdata.storage.dataset import iter_rows  # noqa: E402

pytestmark = pytest.mark.slow
K = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`transformers serve` on a tiny GPT-2 that samples (``do_sample``: otherwise the server ignores seeds)."""
    path = tmp_path_factory.mktemp("policy")
    tokenizer = train_tokenizer(path, chat_template=True)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=256,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                     bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    generation = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps({**generation, "do_sample": True}))
    port = free_port()
    env = {**subprocess_env(), "PYTHONPATH": os.pathsep.join(sys.path)}  # the serving packages where pytest found them
    log = open(path / "serve.log", "w")
    process = subprocess.Popen([sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve", str(path), "--host", "127.0.0.1", "--port", str(port),
                                "--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"transformers serve did not start: {(path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield str(path), f"http://127.0.0.1:{port}/v1"
    process.kill()
    process.wait()
    log.close()


def test_generate_against_transformers_serve(server, tmp_path):
    model, url = server
    prompts = write_dataset(tmp_path / "in", [make_row([{"role": "user", "content": f"Where does the {a} live ?"}],
                                                       source="t") for a in ("cat", "owl")])
    # one request at a time: the server fixes a reply by its seed only when it does not batch requests together
    config = LLMConfig(model=model, base_url=url, cache="none", max_tokens=6, concurrency=1, timeout=60)
    first = generate(prompts, tmp_path / "a", models=[model], config=config, n_completions=K, quiet=True)
    second = generate(prompts, tmp_path / "b", models=[model], config=config, n_completions=K, quiet=True)
    counts = first["counts"]
    assert counts["records_in"] == 2 * K == counts["rows_out"] + counts["quarantined"]
    assert set(counts["quarantined_by_reason"]) <= {"truncated", "duplicate_sibling", "empty_reply", "refusal"}
    rows = [row for _, row in iter_rows(tmp_path / "a")]
    assert all(row_meta(r)["generate"]["finish_reason"] == "stop" for r in rows)  # "length" ones are quarantined
    assert first["llm"]["tokens_out"] > 0 and first["llm"]["requests"] == 2 * K  # the server's usage was read
    # the server honours each request's seed: a second run without a cache gives the same answers
    assert [r["chosen"] for r in rows] == [r["chosen"] for _, r in iter_rows(tmp_path / "b")]
    assert second["counts"] == counts
    assert Path(tmp_path / "a" / "quarantine.jsonl").read_text() == Path(tmp_path / "b" / "quarantine.jsonl").read_text()
