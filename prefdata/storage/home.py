"""Where prefdata keeps state between runs: one folder, ``$PREFDATA_HOME`` (default ``~/.cache/prefdata``), holding
the LLM reply cache ``llm.sqlite`` and the trainers' token cache ``tokens/``.

``PREFDATA_CACHE`` meant two different things before 0.2 (the SQLite *file* for `synthesize`/`score`, a *directory*
for the trainers), which broke `prefdata score` whenever it was set for the trainers. It keeps working for one
release, read as what it names (an existing file or a ``.sqlite`` path is the LLM cache file, anything else the home
folder), with a one-line deprecation notice on stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HOME_ENV = "PREFDATA_HOME"
DEPRECATED_ENV = "PREFDATA_CACHE"
LLM_CACHE_NAME = "llm.sqlite"
TOKENS_NAME = "tokens"
_warned: set[str] = set()


def _deprecated_cache() -> Path | None:
    value = os.environ.get(DEPRECATED_ENV)
    if not value or os.environ.get(HOME_ENV):
        return None
    if DEPRECATED_ENV not in _warned:
        _warned.add(DEPRECATED_ENV)
        print(f"prefdata: warning: {DEPRECATED_ENV} is deprecated and will be removed in 0.3; set {HOME_ENV} "
              f"(a folder holding {LLM_CACHE_NAME} and {TOKENS_NAME}/) instead", file=sys.stderr)
    return Path(value).expanduser()


def _names_a_file(path: Path) -> bool:
    return path.is_file() or (not path.is_dir() and path.suffix in (".sqlite", ".sqlite3", ".db"))


def prefdata_home() -> Path:
    """``$PREFDATA_HOME``, else ``$XDG_CACHE_HOME/prefdata``, else ``~/.cache/prefdata``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    old = _deprecated_cache()
    if old is not None:
        return old.parent if _names_a_file(old) else old
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prefdata"


def llm_cache_path() -> Path:
    """The SQLite file of LLM replies shared by `synthesize`, `score` and everything else that calls a model."""
    old = _deprecated_cache()
    if old is not None and _names_a_file(old):
        return old
    return prefdata_home() / LLM_CACHE_NAME


def token_cache_dir() -> Path:
    """The trainers' token cache (one entry per dataset content, tokenizer and settings)."""
    return prefdata_home() / TOKENS_NAME
