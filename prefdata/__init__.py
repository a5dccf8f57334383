"""prefdata: preference data for RLHF, from raw files to the three InstructGPT training phases."""

from __future__ import annotations

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.render import render
from prefdata.contract.row import PREFERENCE_SCHEMA, UNSUP_SCHEMA, make_row, make_unsup_row, row_kind
from prefdata.contract.version import __version__
from prefdata.storage.dataset import DatasetWriter, load, read_manifest

__all__ = [
    "DatasetWriter",
    "PREFERENCE_SCHEMA",
    "PrefdataError",
    "RowError",
    "UNSUP_SCHEMA",
    "__version__",
    "load",
    "make_row",
    "make_unsup_row",
    "read_manifest",
    "render",
    "row_kind",
]
