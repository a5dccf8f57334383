"""Shared fixtures: the real data in ../shared/data, and a temporary working folder per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("PREFDATA_SHARED_DATA", REPO.parent / "shared" / "data"))


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"real data missing: {path} (CI runs with ../shared beside the clone; set PREFDATA_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def hh_harmless_test() -> Path:
    """The real Anthropic HH-RLHF harmless-base test split (2,312 records, MIT licence)."""
    return _shared("hh-rlhf/harmless-base/test.jsonl.gz")


@pytest.fixture(scope="session")
def shp_card_example() -> Path:
    """The one example row printed in the Stanford SHP dataset card (labels = 1: A preferred)."""
    return _shared("shp/card_example.jsonl")
