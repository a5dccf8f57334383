"""The record loop: every record a step reads becomes a row or a `Reject`; both are counted; a reject is quarantined or
stops the run.

`import`, `download` (hh-rlhf, shp, any Hub dataset, the parallel HH path of `prefdata.pipeline.parallel` included),
`score` and `synthesize` all go through `RecordLoop`, so the same defect gives the same ``quarantine.jsonl`` line and
the same ``--on-error fail`` message whichever verb found it, and every manifest counts records the same way: in total
(`DatasetWriter`) and per input file (``files``: records in, rows out, quarantined by reason), as datatrove's
per-step stats do.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.storage.readers import BadRecord, Record

if TYPE_CHECKING:
    import pyarrow as pa

    from prefdata.storage.dataset import DatasetWriter

ON_ERROR = ("quarantine", "fail")


@dataclass(frozen=True)
class Reject:
    """A record that did not become a row: where it was, why (a stable ``reason`` code), and the record as read.

    ``line`` is the 1-based line where the record starts when the input has lines; ``index`` its 0-based position
    otherwise (Parquet, a dataset's rows, generated candidates). Workers return these too: the class pickles.
    """

    reason: str
    message: str
    record: Any
    file: str | None = None
    line: int | None = None
    index: int | None = None
    field: str | None = None

    @classmethod
    def of(cls, error: RowError, record: Any, **where: Any) -> Reject:
        """The reject for a parser's `RowError` on ``record``; ``where``: file, line, index."""
        return cls(error.reason, error.message, record, field=error.field, **where)

    @classmethod
    def of_bad_record(cls, bad: BadRecord) -> Reject:
        """A reader's `BadRecord` (a record that is not even JSON/CSV) as the one reject type."""
        return cls(bad.reason, bad.message, bad.raw, file=bad.file, line=bad.line, index=bad.index)

    def at(self, **where: Any) -> Reject:
        """The same reject placed in its input (file, line, index), for parsers that do not know where they are."""
        return dataclasses.replace(self, **where)

    @property
    def text(self) -> str:
        """The quarantine message: the field first when the defect is in one field (``chosen: the reply is empty``)."""
        return f"{self.field}: {self.message}" if self.field else self.message

    def error(self) -> PrefdataError:
        """What ``--on-error fail`` raises: one line naming file, line (or index), field, message and reason."""
        return PrefdataError(f"{self.message} ({self.reason})", file=self.file, line=self.line, index=self.index,
                             field=self.field)


@dataclass(frozen=True)
class ParsedRow:
    """A record that became a row, with its place in the input."""

    file: str
    index: int
    line: int | None
    row: dict[str, Any]


def parse_records(items: Iterable[Record | BadRecord], parse: Callable[[Any], dict[str, Any]]
                  ) -> Iterator[ParsedRow | Reject]:
    """Each record a reader yields, through ``parse``: a `ParsedRow`, or a `Reject` for a bad record or a `RowError`."""
    for item in items:
        if isinstance(item, BadRecord):
            yield Reject.of_bad_record(item)
            continue
        try:
            row = parse(item.value)
        except RowError as e:
            yield Reject.of(e, item.value, file=item.file, line=item.line, index=item.index)
            continue
        yield ParsedRow(item.file, item.index, item.line, row)


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise PrefdataError(f"unknown value {on_error!r}; choose one of {', '.join(ON_ERROR)}", field="--on-error")
    return on_error


@dataclass
class FileCounts:
    """One input's counters: records read, rows written, records quarantined by reason."""

    records: int = 0
    rows: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "rows": self.rows, "quarantined": sum(self.quarantined_by_reason.values()),
                "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items()))}


class RecordLoop:
    """Writes one step's rows and rejects into a `DatasetWriter`, counting both, per input file and in total.

    ``on_error="fail"`` turns the first defective record into the `PrefdataError` of `Reject.error` (the writer's
    context then leaves nothing behind); records a step filters out on purpose go through `quarantine` whatever
    ``on_error`` says. `finish` puts the per-file counters in the manifest as ``files`` (``describe`` adds e.g. the
    format).
    """

    def __init__(self, writer: DatasetWriter, on_error: str = "quarantine") -> None:
        self.writer = writer
        self.on_error = check_on_error(on_error)
        self.files: dict[str, FileCounts] = {}
        self._described: dict[str, dict[str, Any]] = {}

    def counts(self, file: str) -> FileCounts:
        if file not in self.files:
            self.files[file] = FileCounts()
        return self.files[file]

    def describe(self, file: str, **about: Any) -> FileCounts:
        """Record what the manifest should say of ``file`` beside its counters (format, source, …)."""
        self._described[file] = about
        return self.counts(file)

    def row(self, row: Mapping[str, Any], split: str, file: str) -> None:
        self.writer.count_in()
        self.writer.write(row, split)
        counts = self.counts(file)
        counts.records += 1
        counts.rows += 1

    def table(self, table: pa.Table, split: str, file: str) -> None:
        """A block of rows already in Arrow (the parallel path): one record in per row."""
        self.writer.count_in(table.num_rows)
        self.writer.split(split).write_table(table)
        counts = self.counts(file)
        counts.records += table.num_rows
        counts.rows += table.num_rows

    def reject(self, reject: Reject) -> None:
        """A defective record: quarantined, or with ``on_error="fail"`` the end of the run."""
        if self.on_error == "fail":
            raise reject.error()
        self.quarantine(reject)

    def quarantine(self, reject: Reject) -> None:
        """A record set aside: one ``quarantine.jsonl`` line (its line, else its index), counted in and by reason."""
        self.writer.count_in()
        self.writer.quarantine(reject.reason, reject.text, reject.record, file=reject.file, line=reject.line,
                               index=reject.index if reject.line is None else None)
        counts = self.counts(reject.file or "")
        counts.records += 1
        counts.quarantined_by_reason[reject.reason] += 1

    def consume(self, items: Iterable[ParsedRow | Reject], split: str) -> None:
        """Write each parsed row to ``split``; reject the rest."""
        for item in items:
            if isinstance(item, ParsedRow):
                self.row(item.row, split, item.file)
            else:
                self.reject(item)

    def finish(self) -> dict[str, dict[str, Any]]:
        """Put the per-file counters in the manifest (``files``), in the order the files were read; return them."""
        files = {file: {**self._described.get(file, {}), **counts.as_dict()} for file, counts in self.files.items()}
        self.writer.extra["files"] = files
        return files
