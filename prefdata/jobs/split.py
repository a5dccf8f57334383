"""The phase split (design §4): SFT / reward model / PPO, each with train and eval, without leakage.

Steps, each over whole Arrow columns: read every input split (memory-mapped), drop exact duplicates, contaminated rows
(`prefdata.jobs.decontaminate`: exact prompt or 13-gram overlap with an ``--exclude`` benchmark) and near-duplicate
rows, blend inputs by weight, pair scored rows (`prefdata.jobs.split_pairs`: ``--pairs`` policy, ``--min-margin``), then
assign each `group` to one phase and one part with a seeded hash. A group's phase depends only on (seed, group, the
kinds of its rows), so the result does not depend on row order or process count, and appended rows never move old
groups. Rows are written in a seeded order derived from their
ids, so a shuffled input gives byte-identical output.

Which phases a row can serve is `prefdata.contract.phases.SERVES` (design §1): a pair serves sft (prompt + chosen), rm,
and ppo (its prompt); a demonstration or a lone scored row serves sft; a prompt-only row serves ppo. A group may go to the phases all its rows can serve, with
the requested ratio renormalised over them; if its rows have no phase in common, it may go to any phase one of them
serves, and the rows that phase cannot use are quarantined (`unusable_in_phase`). A group whose eligible phases all
have ratio 0 is quarantined (`phase_disabled`). Every input record ends in exactly one split or in quarantine.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import PHASES, SERVES, SPLITS
from prefdata.contract.row import PREFERENCE_SCHEMA, PREFERENCE_SCHEMA_ID, PREFERENCE_SCHEMA_IDS, RowKind
from prefdata.jobs.decontaminate import MIN_RUN_WORDS, Benchmarks, contaminated, read_benchmarks
from prefdata.jobs.split_pairs import check_policy, pair_scored
from prefdata.pipeline import dedup
from prefdata.pipeline.progress import info, progress
from prefdata.storage.dataset import DatasetWriter, load_tables, read_manifest

# Row kinds as the small integer codes the split computes with (`row_kinds`), and what each serves, in PHASES order.
KIND_CODES: tuple[RowKind, ...] = ("pair", "demonstration", "prompt_only", "scored", "unpaired")
_SERVES = np.array([[phase in SERVES[kind] for phase in PHASES] for kind in KIND_CODES])
_WRITE_ROWS = 50_000


def parse_numbers(text: str, name: str, count: int | None = None) -> tuple[float, ...]:
    """`"6,2,2"` -> (6.0, 2.0, 2.0); a clear error for anything else."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise PrefdataError(f"{text!r} is not a comma-separated list of numbers", field=name) from None
    if count is not None and len(values) != count:
        raise PrefdataError(f"needs {count} numbers, got {len(values)} in {text!r}", field=name)
    if any(v < 0 or v != v or v == float("inf") for v in values) or not sum(values) > 0:
        raise PrefdataError(f"numbers must be finite, non-negative and not all zero: {text!r}", field=name)
    return values


def unit_floats(keys: Sequence[str], seed: int, namespace: str) -> np.ndarray:
    """sha256(seed, namespace, key) -> a uniform float in [0, 1) per key: the same key always lands in the same place."""
    salt = f"{seed}\0{namespace}\0"
    return (dedup.hash64_strings(keys, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_phases(u: np.ndarray, eligible: np.ndarray, ratio: Sequence[float]) -> np.ndarray:
    """Phase index per unit from a uniform ``u`` and a (N, 3) eligibility mask; -1 where no eligible phase has weight."""
    weights = eligible * np.asarray(ratio, dtype=np.float64)
    total = weights.sum(axis=1)
    cumulative = np.cumsum(weights, axis=1) / np.where(total > 0, total, 1.0)[:, None]
    phase = (u[:, None] >= cumulative).sum(axis=1)
    phase = np.minimum(phase, len(PHASES) - 1)
    while True:  # floating-point edge: never land on a phase of weight 0
        bad = (total > 0) & ~(weights[np.arange(len(u)), phase] > 0)
        if not bad.any():
            break
        phase[bad] -= 1
    return np.where(total > 0, phase, -1)


def read_inputs(directories: Sequence[str | os.PathLike], splits: Sequence[str] | None) -> tuple[pa.Table, list]:
    """All chosen splits of all inputs as one memory-mapped table, plus (input, dir, split, start, rows) per part."""
    tables, parts, start = [], [], 0
    for number, directory in enumerate(directories):
        manifest = read_manifest(directory)
        if manifest.get("schema") not in PREFERENCE_SCHEMA_IDS:
            raise PrefdataError(f"holds {manifest.get('schema')} rows; split needs {PREFERENCE_SCHEMA_ID}", file=str(directory))
        dataset_tables = load_tables(directory)
        names = list(splits) if splits else list(dataset_tables)
        for name in names:
            if name not in dataset_tables:
                raise PrefdataError(f"has no split {name!r} (it has {', '.join(dataset_tables)})", file=str(directory))
            table = dataset_tables[name].select(PREFERENCE_SCHEMA.names)
            tables.append(table.cast(PREFERENCE_SCHEMA))
            parts.append((number, str(directory), name, start, table.num_rows))
            start += table.num_rows
    table = pa.concat_tables(tables) if tables else PREFERENCE_SCHEMA.empty_table()
    return table, parts


def row_kinds(table: pa.Table) -> np.ndarray:
    """`row_kind` of every row as its index in KIND_CODES (a scored single reply is paired later, else a
    demonstration)."""
    def valid(*names: str) -> np.ndarray:  # a reply is set as text or as turns (`has_reply`)
        return np.logical_or.reduce([pc.is_valid(table.column(n)).to_numpy(zero_copy_only=False) for n in names])

    chosen, rejected = valid("chosen", "chosen_turns"), valid("rejected", "rejected_turns")
    scored, unpaired = valid("chosen_score"), valid("label")
    code = KIND_CODES.index
    return np.select([unpaired, chosen & rejected, chosen & scored, chosen],
                     [code("unpaired"), code("pair"), code("scored"), code("demonstration")],
                     default=code("prompt_only")).astype(np.int8)


def blend(alive: np.ndarray, input_of: np.ndarray, group_hash: np.ndarray, row_key: np.ndarray,
          weights: Sequence[float] | None, max_rows: int | None, inputs: int) -> np.ndarray:
    """Rows kept by seeded sampling so inputs make up ``weights`` of the result (at most ``max_rows`` rows).

    Each input's rows are ranked by a seeded hash of their group (then of the row), and the first k_i are kept, so
    groups are kept or dropped whole except at the cut, and the counts are exact.
    """
    available = np.bincount(input_of[alive], minlength=inputs).astype(np.float64)
    if weights is None:
        share = available / max(available.sum(), 1.0)
    else:
        share = np.asarray(weights, dtype=np.float64) / sum(weights)
    positive = share > 0
    total = min(available[positive] / share[positive]) if positive.any() else 0.0
    if max_rows is not None:
        total = min(total, float(max_rows))
    keep = np.zeros_like(alive)
    for number in range(inputs):
        want = min(int(round(share[number] * total)), int(available[number]))
        rows = np.flatnonzero(alive & (input_of == number))
        order = rows[np.lexsort((row_key[rows], group_hash[rows]))]
        keep[order[:want]] = True
    return keep


def split_datasets(
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    ratio: Sequence[float] = (6, 2, 2),
    eval_fraction: float = 0.05,
    seed: int = 1234,
    splits: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    max_rows: int | None = None,
    near_dup: float | None = None,
    exclude: Sequence[str | os.PathLike] = (),
    exclude_ngram: int = 13,
    pairs: str | None = None,
    min_margin: float = 0.0,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Split prefdata directories into `sft_train … ppo_eval` in ``out``; returns the manifest."""
    if not inputs:
        raise PrefdataError("give at least one input directory")
    ratio = tuple(float(r) for r in ratio)
    if len(ratio) != 3 or any(r < 0 for r in ratio) or not sum(ratio) > 0:
        raise PrefdataError("needs three non-negative numbers (sft, rm, ppo), not all zero", field="ratio")
    if not 0.0 <= eval_fraction < 1.0:
        raise PrefdataError("must be in [0, 1)", field="eval_fraction")
    if weights is not None and (len(weights) != len(inputs) or any(w < 0 for w in weights) or not sum(weights) > 0):
        raise PrefdataError(f"needs one non-negative weight per input ({len(inputs)})", field="weights")
    if max_rows is not None and max_rows < 0:
        raise PrefdataError("must be >= 0", field="max_rows")
    if near_dup is not None and not 0.0 < near_dup <= 1.0:
        raise PrefdataError("the near-duplicate threshold must be in (0, 1]", field="near_dup")
    check_policy(pairs, min_margin)
    if exclude_ngram < 0:
        raise PrefdataError("must be >= 0 (0: exact prompt match only)", field="exclude_ngram")
    options = {"inputs": [str(p) for p in inputs], "ratio": list(ratio), "eval_fraction": eval_fraction, "seed": seed,
               "splits": list(splits) if splits else None, "weights": list(weights) if weights else None,
               "max_rows": max_rows, "near_dup": near_dup, "exclude": [str(p) for p in exclude]}
    if exclude:
        options["exclude_ngram"] = exclude_ngram
    if pairs is not None:
        options.update(pairs=pairs, min_margin=min_margin)
    table, parts = read_inputs(inputs, splits)
    benchmarks = read_benchmarks(list(exclude)) if exclude else None
    n = table.num_rows
    input_of = np.zeros(n, dtype=np.int32)
    for number, _, _, start, rows in parts:
        input_of[start : start + rows] = number
    with DatasetWriter(out, command="split", options=options, overwrite=overwrite, count_rows_out=False) as writer:
        for path in dict.fromkeys(str(p) for p in [*inputs, *exclude]):  # each manifest pins its shards' sha256
            writer.add_input(Path(path) / "prefdata.json" if Path(path).is_dir() else path)
        writer.count_in(n)
        dropped = _Drops(table, parts)
        alive = np.ones(n, dtype=bool)
        kinds = row_kinds(table)

        gone, kept = dedup.exact_duplicates(table)
        dropped.add(gone, "duplicate", kept, "same id as a row that was kept")
        alive[gone] = False
        decontamination = None
        if benchmarks is not None:
            decontamination = _decontaminate(table, alive, benchmarks, exclude_ngram, dropped, quiet)
        if near_dup is not None:
            candidates = np.flatnonzero(alive)
            gone, kept = dedup.near_duplicates(table, near_dup, rows=candidates,
                                               progress=lambda it, total: progress(it, desc="near-dup", total=total,
                                                                                   quiet=quiet, unit="chunk"))
            dropped.add(candidates[gone], "near_duplicate", candidates[kept], "near-duplicate of a row that was kept")
            alive[candidates[gone]] = False

        row_key = _row_keys(table.column("id"), seed)
        blend_report = None
        if weights is not None or max_rows is not None:
            group_codes, group_keys = _group_codes(table.column("group"))
            group_hash = unit_floats(group_keys, seed, "blend")[group_codes]
            keep = blend(alive, input_of, group_hash, row_key, weights, max_rows, len(inputs))
            dropped.add(np.flatnonzero(alive & ~keep), "sampled_out", None, "not drawn by --weights/--max-rows")
            alive &= keep
            achieved = np.bincount(input_of[alive], minlength=len(inputs))
            blend_report = {"weights": list(weights) if weights else None, "max_rows": max_rows,
                            "rows": {str(p): int(c) for p, c in zip(inputs, achieved)},
                            "achieved_mix": {str(p): round(float(c) / max(achieved.sum(), 1), 6)
                                             for p, c in zip(inputs, achieved)}}

        scored = np.flatnonzero(alive & (kinds == KIND_CODES.index("scored")))
        pairing = pair_scored(table, scored, input_of, policy=pairs, min_margin=min_margin)
        kinds[scored] = KIND_CODES.index("demonstration")  # a lone scored reply is a demonstration (no --pairs)
        left_out = sorted(pairing.left_out)
        dropped.add(np.array([index for index, _ in left_out], dtype=np.int64), "not_paired", None,
                    [message for _, message in left_out])
        alive[[index for index, _ in left_out]] = False
        used = pairing.used
        pair_rows = _drop_known_ids(pairing.pairs, table.column("id"), alive)
        pair_table = pa.Table.from_pylist(pair_rows, schema=PREFERENCE_SCHEMA)
        units = np.flatnonzero(alive)
        units = np.setdiff1d(units, used, assume_unique=True)
        full = pa.concat_tables([table, pair_table]) if pair_rows else table
        unit_kind = np.concatenate([kinds[units], np.full(len(pair_rows), KIND_CODES.index("pair"), dtype=np.int8)])
        unit_rows = np.concatenate([units, n + np.arange(len(pair_rows))])
        unit_row_key = np.concatenate([row_key[units], _row_keys(pair_table.column("id"), seed)])
        codes, uniques = _group_codes(pc.take(full.column("group"), pa.array(unit_rows, type=pa.int64())))
        size = np.bincount(codes, minlength=len(uniques))
        serves = np.stack([np.bincount(codes, weights=_SERVES[unit_kind][:, p], minlength=len(uniques))
                           for p in range(len(PHASES))], axis=1)
        eligible = np.where((serves == size[:, None]).any(axis=1)[:, None], serves == size[:, None], serves > 0)
        phase_of_group = assign_phases(unit_floats(uniques, seed, "phase"), eligible, ratio)
        eval_of_group = unit_floats(uniques, seed, "eval") < eval_fraction
        phase = phase_of_group[codes]
        usable = (phase >= 0) & _SERVES[unit_kind, np.maximum(phase, 0)]
        originals = unit_rows < n
        dropped.add(unit_rows[originals & (phase < 0)], "phase_disabled", None,
                    "every phase this row's group can serve has ratio 0")
        dropped.add(unit_rows[originals & (phase >= 0) & ~usable], "unusable_in_phase", None,
                    "its group went to a phase this kind of row cannot serve")

        split_of = np.where(usable, phase * 2 + eval_of_group[codes], -1)
        rows_per_split = {}
        with progress(None, total=int(usable.sum()), desc="split", quiet=quiet, unit="row") as bar:
            for number, name in enumerate(SPLITS):
                chosen = split_of == number
                order = unit_rows[chosen][np.argsort(unit_row_key[chosen], kind="stable")]
                split_writer = writer.split(name)
                for start in range(0, len(order), _WRITE_ROWS):
                    chunk = order[start : start + _WRITE_ROWS]
                    split_writer.write_table(full.take(pa.array(chunk)))
                    bar.update(len(chunk))
                rows_per_split[name] = int(chosen.sum())
        dropped.flush(writer)
        writer.count_out(n - dropped.count)
        _report(writer, rows_per_split, ratio, eval_fraction, seed, pairing.counts, blend_report, decontamination, dropped, near_dup, exclude)
        rankings = rankings_of(inputs)
        if rankings:
            writer.extra["rankings"] = rankings
    return writer.manifest


def rankings_of(directories: Sequence[str | os.PathLike]) -> list[dict]:
    """The `rank` block of each input `prefdata rank` wrote (ranker, judges, agreement), so the pairs' directory
    still says how its answers were ranked (`prefdata stats` puts it in the data card)."""
    out = []
    for directory in directories:
        rank = read_manifest(directory).get("rank")
        if isinstance(rank, dict):
            out.append({"input": str(directory), **rank})
    return out


class _Drops:
    """Rows leaving the split, with a reason; written to quarantine with where they came from."""

    def __init__(self, table: pa.Table, parts: list) -> None:
        self.table, self.parts, self.entries, self.count = table, parts, [], 0
        self.by_reason: dict[str, int] = defaultdict(int)

    def add(self, rows: np.ndarray, reason: str, kept: np.ndarray | None, message: str | Sequence[str],
            details: Sequence[dict] | None = None) -> None:
        """Drop ``rows`` for ``reason``; ``message`` is one for all or one per row, ``details`` extra record fields."""
        if len(rows):
            messages = [message] * len(rows) if isinstance(message, str) else list(message)
            self.entries.append((np.asarray(rows), reason, kept, messages, details or [{}] * len(rows)))
            self.count += len(rows)
            self.by_reason[reason] += len(rows)

    def flush(self, writer: DatasetWriter) -> None:
        starts = np.array([p[3] for p in self.parts])
        ids = self.table.column("id")
        for rows, reason, kept, messages, details in self.entries:
            refs = self.table.select(["id", "source", "group"]).take(pa.array(rows)).to_pylist()
            kept_ids = pc.take(ids, pa.array(kept)).to_pylist() if kept is not None else [None] * len(rows)
            for row, record, kept_id, message, extra in zip(rows.tolist(), refs, kept_ids, messages, details):
                part = self.parts[int(np.searchsorted(starts, row, side="right")) - 1]
                if kept_id is not None:
                    record["kept_id"] = kept_id
                record.update(extra)
                writer.quarantine(reason, message, record, file=f"{part[1]}/{part[2]}", index=row - part[3])


def _decontaminate(table: pa.Table, alive: np.ndarray, benchmarks: Benchmarks, ngram: int, dropped: _Drops,
                   quiet: bool) -> dict[str, Any]:
    """Quarantine the live rows whose prompt is (or holds an ``ngram``-word run of) a benchmark prompt; the report."""
    how = f"exact prompts and {ngram}-grams" if ngram else "exact prompts only"
    info(f"decontaminating against {len(benchmarks.ids):,} prompts from {len(set(benchmarks.files))} benchmark(s), {how}", quiet)
    checked = np.flatnonzero(alive)
    removals = contaminated(table, checked, benchmarks, ngram)
    dropped.add(removals.rows, "contaminated", None, removals.messages, removals.details)
    alive[removals.rows] = False
    return {"benchmarks": list(dict.fromkeys(benchmarks.files)), "benchmark_prompts": len(benchmarks.ids), "ngram": ngram,
            "min_run_words": min(ngram, MIN_RUN_WORDS) if ngram else None, "rows_checked": len(checked),
            "removed_exact": removals.exact, "removed_ngram": removals.ngram,
            "rows_kept": len(checked) - len(removals.rows)}


def _group_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def _row_keys(ids: pa.ChunkedArray, seed: int) -> np.ndarray:
    """Seeded output order from the ids: a bijective mix of the 64-bit id, so distinct ids never tie."""
    values = dedup.id_values(ids)
    salt = np.uint64(int.from_bytes(hashlib.sha256(f"{seed}\0order".encode()).digest()[:8], "big"))
    if values is None:
        values = dedup.hash64_strings(ids.to_pylist(), "id\0")
    return dedup.splitmix64(values ^ salt)


def _drop_known_ids(pairs: list[dict], ids: pa.ChunkedArray, alive: np.ndarray) -> list[dict]:
    """A pair built from scored rows that already exists as a row (or twice) is written once."""
    if not pairs:
        return pairs
    existing = set(pc.filter(ids, pa.array(alive)).to_pylist()) if len(pairs) else set()
    unique = {}
    for pair in pairs:
        if pair["id"] not in existing:
            unique.setdefault(pair["id"], pair)
    return list(unique.values())


def _report(writer, rows_per_split, ratio, eval_fraction, seed, pairing, blend_report, decontamination, dropped, near_dup, exclude):
    total = sum(rows_per_split.values())
    per_phase = {p: rows_per_split[f"{p}_train"] + rows_per_split[f"{p}_eval"] for p in PHASES}
    requested = {p: r / sum(ratio) for p, r in zip(PHASES, ratio)}
    writer.extra["split"] = {
        "seed": seed,
        "ratio_requested": dict(zip(PHASES, ratio)),
        "ratio_achieved": {p: round(per_phase[p] / total, 6) if total else 0.0 for p in PHASES},
        "eval_fraction_requested": eval_fraction,
        "eval_fraction_achieved": {p: round(rows_per_split[f"{p}_eval"] / per_phase[p], 6) if per_phase[p] else 0.0
                                   for p in PHASES},
        "rows": rows_per_split,
    }
    writer.extra["dedup"] = {"duplicate": dropped.by_reason.get("duplicate", 0),
                             "near_duplicate": dropped.by_reason.get("near_duplicate", 0),
                             "contaminated": dropped.by_reason.get("contaminated", 0),
                             "near_dup_threshold": near_dup, "exclude": [str(p) for p in exclude]}
    writer.extra["pairing"] = pairing
    if blend_report is not None:
        writer.extra["blend"] = blend_report
    if decontamination is not None:
        writer.extra["decontamination"] = decontamination
    for phase in PHASES:
        if requested[phase] > 0 and per_phase[phase] == 0:
            writer.warn(f"phase {phase} is empty although its ratio is {ratio[PHASES.index(phase)]:g}")
        elif per_phase[phase] and eval_fraction > 0 and rows_per_split[f"{phase}_eval"] == 0:
            writer.warn(f"{phase}_eval is empty (too few groups for --eval-fraction {eval_fraction:g})")
    if dropped.by_reason.get("phase_disabled"):
        writer.warn(f"{dropped.by_reason['phase_disabled']:,} rows fit only phases with ratio 0 (quarantined)")
