"""Masking secrets in text that leaves the engine: error lines, quarantine messages, manifest fields.

A server's error body may echo what it was sent (a 401 that quotes the ``Authorization`` header), and a base URL or a
proxy's message may carry a token. Every message the LLM layer builds from text it did not write goes through
`redact` before it can reach a terminal, a log or a file.

What counts as a secret: the value of ``OPENAI_API_KEY`` itself, anything shaped like an OpenAI key (``sk-…``), the
credential after ``Bearer``/``Basic``, the value of a ``key=``/``token:``-style field, and long random-looking tokens:
32+ hex digits mixing letters and digits, or 32+ base64 characters mixing upper case, lower case and digits (which
words, numbers and absolute paths do not).
"""

from __future__ import annotations

import os
import re

API_KEY_ENV = "OPENAI_API_KEY"
MASK = "[redacted]"
MIN_ENV_KEY_CHARS = 8  # a shorter "key" (local servers accept anything) is too likely to be an ordinary word

_OPENAI_KEY = re.compile(r"\bsk-[A-Za-z0-9][A-Za-z0-9_\-]{6,}")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",;}\]]+")
_NAMED_SECRET = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|token|secret|password|passwd)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[redacted\])[^\s'\",;&}\]]+"
)
_HEX_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?=[A-Fa-f0-9]*[A-Fa-f])(?=[A-Fa-f0-9]*[0-9])[A-Fa-f0-9]{32,}(?![A-Za-z0-9])")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{32,}={0,2}")


def redact(text: str) -> str:
    """``text`` with every secret-shaped part replaced by ``[redacted]``."""
    key = os.environ.get(API_KEY_ENV, "")
    if len(key) >= MIN_ENV_KEY_CHARS:
        text = text.replace(key, MASK)
    text = _OPENAI_KEY.sub(MASK, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _NAMED_SECRET.sub(lambda m: m.group(1) + MASK, text)
    text = _HEX_TOKEN.sub(MASK, text)
    return _BASE64_RUN.sub(_mask_if_random, text)


def _mask_if_random(match: re.Match[str]) -> str:
    """Base64 from a random source mixes all three character classes; a path or an identifier rarely does."""
    run = match.group(0)
    looks_random = (not run.startswith("/") and any(c.isupper() for c in run) and any(c.islower() for c in run)
                    and any(c.isdigit() for c in run))
    return MASK if looks_random else run
