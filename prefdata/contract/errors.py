"""Errors a user can cause, as opposed to bugs.

`PrefdataError` is printed by the CLI as one line (``FILE:LINE: field: message``) with a non-zero exit and no traceback.
`RowError` is a defect in one record: the record goes to ``quarantine.jsonl`` with ``reason`` (or stops the run with
``--on-error fail``).
"""

from __future__ import annotations


class PrefdataError(Exception):
    """A mistake in the user's input or options; never a bug in prefdata."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.index = index
        self.field = field

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            elif self.index is not None:
                where += f"[{self.index}]"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class ValidationFailed(PrefdataError):
    """Validation found violations; they were already printed, exit 1."""

    exit_code = 1


class RowError(Exception):
    """One record cannot become a row. ``reason`` is a stable code (``identical_pair``, ``empty_reply``, …)."""

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message
