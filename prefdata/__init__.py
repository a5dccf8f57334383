"""prefdata: preference data for RLHF, from raw files to the three InstructGPT training phases."""

from __future__ import annotations

__version__ = "0.1.0"

from prefdata.contract.errors import PrefdataError, RowError  # noqa: E402
from prefdata.contract.render import render  # noqa: E402
from prefdata.contract.row import PREFERENCE_SCHEMA, UNSUP_SCHEMA, make_row, make_unsup_row, row_kind  # noqa: E402
from prefdata.storage.dataset import DatasetWriter, load, read_manifest  # noqa: E402

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
