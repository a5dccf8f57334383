"""Helpers for the LLM tests: a small real-data dataset and a judge that behaves like a model would."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from fake_openai_server import FakeOpenAI
from support import hh_rows, write_dataset  # noqa: F401  (re-exported for the tests that import them here)

from prefdata.llm.engine import ChatRequest, LLMConfig

SECRET = "sk-test-5d1c0a9e-never-write-me-7f3b"


def engine_config(server: FakeOpenAI, tmp_path: Path, **overrides: Any) -> LLMConfig:
    """Engine settings for the engine-level tests: a short timeout, few retries, a cache in ``tmp_path``."""
    settings = {"model": "fake-model", "base_url": server.url, "cache": str(tmp_path / "cache.sqlite"),
                "timeout": 5.0, "max_retries": 3, "concurrency": 4, "max_tokens": 16}
    return LLMConfig(**{**settings, **overrides})


def numbered_requests(cfg: LLMConfig, count: int) -> list[ChatRequest]:
    return [ChatRequest.of([{"role": "user", "content": f"question number {i}"}], cfg) for i in range(count)]


def prefdata_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefdata.cli", *args]


def env_for(server: FakeOpenAI) -> dict[str, str]:
    """The environment of a CLI run against ``server``, holding the test key (and no other OPENAI_/PREFDATA_ setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PREFDATA_"))}
    return {**env, "OPENAI_API_KEY": SECRET, "OPENAI_BASE_URL": server.url}


def last_content(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


def section(text: str, start: str, end: str) -> str:
    """The text between two template markers (how a fake judge reads the reply it was shown)."""
    return text.split(start, 1)[1].split(end, 1)[0]


def stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def length_score(reply: str) -> int:
    """The fake pointwise judge's score: a function of the reply, 0 included."""
    return stable_int(reply) % 11


def fake_model(body: dict[str, Any]) -> str:
    """Answers like a model would for each bundled template (recognised by its wording)."""
    text = body["messages"][0]["content"]
    if "Give one whole-number score" in text:
        return str(length_score(section(text, "Assistant's completion:\n", "\n\nGive one whole-number score")))
    if "Reply A:" in text:
        a = section(text, "Reply A:\n", "\n\nReply B:")
        b = section(text, "Reply B:\n", "\n\nAnswer with exactly")
        return "A" if len(a) >= len(b) else "B"
    if "new requests" in text:
        return generated_list(text)
    if "Request:\n" in text:
        return "Here is a careful answer: " + text.split("Request:\n", 1)[1][::-1]
    return "?"


SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "du", "fa", "gi", "ho", "ju", "pe", "zo")


def generated_list(prompt: str) -> str:
    """A numbered list of new requests seeded from the prompt: mostly fresh, plus a copy, a short one, a refusal."""
    import random

    examples = re.findall(r"^\d+\. (.*)$", prompt.split("Write ", 1)[0], flags=re.MULTILINE)
    count = int(re.search(r"Write (\d+) new requests", prompt).group(1))
    rng = random.Random(stable_int(prompt))
    lines = []
    for i in range(count):
        kind = rng.randrange(8)
        if kind == 0 and examples:
            lines.append(examples[i % len(examples)])  # copies an example: near_duplicate
        elif kind == 1:
            lines.append("Why?")  # too_short
        elif kind == 2:
            lines.append("I'm sorry, but I cannot help with writing requests.")  # refusal
        else:
            words = ["".join(rng.choice(SYLLABLES) for _ in range(3)) for _ in range(7)]
            lines.append(f"Explain {' '.join(words)}.")
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def written_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]
