"""Where the bundled `templates/` and `schemas/` folders are, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # prefdata/ (this file is prefdata/contract/resources.py)


def resource_dir(name: str) -> Path:
    """``prefdata/<name>`` in an installed wheel, ``<repo>/<name>`` in a checkout or editable install."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"prefdata's {name}/ folder is missing from the installation ({_PACKAGE})")


def schema_path(name: str) -> Path:
    return resource_dir("schemas") / f"{name}.schema.json"


def templates_path() -> Path:
    return resource_dir("templates") / "templates.json"


def sample_path() -> Path:
    """The bundled HH-shaped sample (our own text, with a few deliberate defects)."""
    return _PACKAGE / "data" / "sample_hh.jsonl"
