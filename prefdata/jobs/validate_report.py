"""What `prefdata validate` found: one `Violation` per problem and the `ValidationReport` that counts them.

Shared by file validation (`prefdata.jobs.validate`) and directory validation (`prefdata.jobs.validate_dataset`), so
neither imports the other's module for its types.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_ERRORS = 20
DIRECTORY = "dataset directory"  # what `ValidationReport.schemas` says for a directory

Echo = Callable[[str], Any]


@dataclass(frozen=True)
class Violation:
    """One problem: where (``FILE:LINE``, ``DIR/split:ROW`` or ``DIR``), a JSON pointer or field, a message, and the
    row rule's reason code (`prefdata.contract.rules`) when a row rule found it: the code import quarantines with."""

    where: str
    pointer: str | None
    message: str
    reason: str | None = None

    def __str__(self) -> str:
        text = f"{self.where}: {self.pointer}: {self.message}" if self.pointer else f"{self.where}: {self.message}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass
class ValidationReport:
    """Counts of everything checked; `violations` holds the first ``max_errors`` problems (all when it is 0)."""

    max_errors: int = DEFAULT_MAX_ERRORS
    violations: list[Violation] = field(default_factory=list)
    violation_count: int = 0
    records: int = 0  # data-file records and dataset rows checked
    bad_records: int = 0  # ... that have at least one violation
    files: int = 0
    directories: int = 0
    bad_files: int = 0  # data files and directories with at least one violation
    rows: int = 0  # of which dataset rows
    schemas: dict[str, str] = field(default_factory=dict)  # path -> schema used
    versions: dict[str, str] = field(default_factory=dict)  # dataset directory -> row schema its rows were checked to
    reasons: Counter[str] = field(default_factory=Counter)  # row-rule reason code -> violations

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def add(self, violation: Violation, out: Echo | None, reason: str | None = None) -> None:
        """Count and keep ``violation``; ``reason`` is a row rule's code for a problem the schema reported too."""
        self.violation_count += 1
        if violation.reason or reason:
            self.reasons[violation.reason or reason] += 1
        if self.max_errors == 0 or len(self.violations) < self.max_errors:
            self.violations.append(violation)
            if out is not None:
                out(str(violation))

    def summary(self) -> str:
        """The total line: ``N violations in M records (K files)``, or a one-line OK."""
        checked = []
        if self.files:
            checked.append(f"{_n(self.records - self.rows, 'record')} in {_n(self.files, 'file')}")
        if self.directories:
            checked.append(f"{_n(self.rows, 'row')} in {_n(self.directories, 'dataset directory', 'directories')}")
        done = " and ".join(checked) or "nothing"
        versions = sorted(set(self.versions.values()))
        against = f"; checked against {', '.join(versions)}" if versions else ""
        if self.ok:
            schemas = sorted({s for s in self.schemas.values() if s != DIRECTORY})
            return f"OK: {done} valid" + (f" (schema {', '.join(schemas)})" if schemas else "") + against
        records = f" in {_n(self.bad_records, 'record')}" if self.bad_records else ""
        line = f"{_n(self.violation_count, 'violation')}{records} ({_n(self.bad_files, 'file')}); {done} checked"
        if self.max_errors and self.violation_count > len(self.violations):
            line += f"; the first {len(self.violations)} shown (--max-errors to see more)"
        return line + against


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


