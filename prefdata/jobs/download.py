"""`prefdata download`: HH-RLHF, SHP or any Hub dataset into one dataset directory.

Each function reads a directory laid out as the Hub repository — a fresh `huggingface_hub` snapshot, or ``from_path``,
a copy made elsewhere — and streams its files through the source's parser into a `DatasetWriter`. The Hub's splits
become the dataset's splits. Every record ends as a row or in quarantine with a reason code, through the one record
loop of `prefdata.pipeline.records` (the same quarantine line as `prefdata import` for the same defect).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prefdata.contract.errors import PrefdataError, RowError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, UNSUP_SCHEMA_ID
from prefdata.formats import hh, shp
from prefdata.pipeline.parallel import RowParser, convert_file
from prefdata.pipeline.progress import progress
from prefdata.pipeline.records import RecordLoop, Reject, check_on_error, parse_records
from prefdata.storage import hub
from prefdata.storage.dataset import DatasetWriter, check_output_dir
from prefdata.storage.readers import BadRecord, iter_records, open_binary

PathLike = str | os.PathLike


def _starts_with_array(path: Path) -> bool:
    with open_binary(path) as stream:
        return stream.peek(64)[:64].lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


def import_jsonl(loop: RecordLoop, path: Path, split: str, parser: RowParser, *, source: str, quiet: bool,
                 workers: int | None = None) -> None:
    """Stream one JSON Lines (or JSON array) file of records through ``parser`` into ``split``."""
    loop.writer.add_input(path)
    loop.writer.split(split)  # the split exists even if every record is quarantined
    if _starts_with_array(path):  # some Hub files named .jsonl hold one JSON array; read them as what they are
        parsed = parse_records(iter_records(path, "json"), lambda value: parser.row(value, source))
        loop.consume(progress(parsed, desc=f"{source} {split}", quiet=quiet), split)
        return
    file = str(path)
    bar = progress(None, desc=f"{source} {split}", quiet=quiet)
    for chunk in convert_file(path, parser, source=source, schema_id=loop.writer.schema_id, workers=workers):
        for reject in chunk.rejects:
            loop.reject(reject)
        if chunk.table is not None:
            loop.table(chunk.table, split, file)
        bar.update(chunk.records)
    bar.close()


def _root(from_path: PathLike | None, repo_id: str, patterns: list[str], layout: str, revision: str | None) -> Path:
    if from_path is not None:
        return hub.local_copy(from_path, repo_id, layout)
    return hub.snapshot(repo_id, patterns, revision=revision, hint=f" (laid out as the repository: {layout})")


def _options(**options: Any) -> dict[str, Any]:
    """The options recorded in the manifest; checks ``on_error`` on the way (the one option every download has)."""
    check_on_error(options.get("on_error"))
    return {key: (str(value) if isinstance(value, os.PathLike) else value) for key, value in options.items()}


def download_hh(
    out: PathLike,
    subset: str = "harmless-base",
    *,
    from_path: PathLike | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    on_error: str = "quarantine",
    workers: int | None = None,
) -> dict[str, Any]:
    """Anthropic HH-RLHF into ``out``: splits train/test, ``source`` = ``hh-rlhf/<subset>``.

    ``subset="all"`` takes the four pair subsets; ``red-team-attempts`` (transcripts, no pairs) becomes unsup text
    (schema ``prefdata.unsup/1``) in split ``train`` and is only taken on its own.
    """
    choices = (*hh.SUBSETS, "all")
    if subset not in choices:
        raise PrefdataError(f"unknown HH-RLHF subset {subset!r}; choose one of {', '.join(choices)}", field="--subset")
    subsets = hh.PAIR_SUBSETS if subset == "all" else (subset,)
    layout = "<subset>/{train,test}.jsonl.gz"
    options = _options(subset=subset, from_path=from_path, revision=revision, on_error=on_error)
    check_output_dir(Path(out), overwrite)  # before any download: a refusal should not cost one
    root = _root(from_path, hh.REPO_ID, [f"{s}/*" for s in subsets], layout, revision)
    red_team = subset == hh.RED_TEAM
    writer = DatasetWriter(out, command="download hh-rlhf", options=options, overwrite=overwrite,
                           schema_id=UNSUP_SCHEMA_ID if red_team else PREFERENCE_SCHEMA_ID)
    with writer:
        loop = RecordLoop(writer, on_error)
        for name in subsets:
            # --from may also name the subset folder itself (…/hh-rlhf/harmless-base)
            folder = root if root.name == name and not (root / name).is_dir() else root / name
            if red_team:
                files = [("train", p) for p in sorted(folder.glob("*.json*"))] if folder.is_dir() else []
            else:
                files = [(split, folder / f"{split}.jsonl.gz") for split in hh.SPLITS]
                for split, path in files:
                    if not path.exists():
                        writer.warn(f"{path} is missing: split {split} of {name} not imported")
                files = [(split, path) for split, path in files if path.exists()]
            if not files:
                raise PrefdataError(f"no {name} files here (expected {layout})", file=str(folder))
            parser = hh.RED_TEAM_TEXT if red_team else hh.PAIRS
            for split, path in files:
                import_jsonl(loop, path, split, parser, source=f"hh-rlhf/{name}", quiet=quiet, workers=workers)
        loop.finish()
        if red_team:
            writer.warn("red-team-attempts has no preference pairs: imported as unsup text (the transcript, with "
                        "rating, harmlessness scores and task fields in meta)")
        writer.extra["hub"] = {"repo_id": hh.REPO_ID, "revision": revision, "local_copy": from_path is not None}
    return writer.manifest


def _shp_domains(root: Path, domains: Iterable[str] | None) -> list[str]:
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and any(
        (p / f"{split}.json").exists() for split in shp.SPLITS))
    if not available:
        raise PrefdataError("no SHP domain folders here (expected <domain>/{train,validation,test}.json)",
                            file=str(root))
    if not domains:
        return available
    wanted = [d.strip() for d in domains if d.strip()]
    unknown = [d for d in wanted if d not in available]
    if unknown:
        raise PrefdataError(f"unknown SHP domain(s) {', '.join(unknown)}; available: {', '.join(available)}",
                            field="--domains")
    return sorted(set(wanted))


def _import_shp_file(loop: RecordLoop, path: Path, split: str, domain: str, *, min_score_ratio: float,
                     cap: int, quiet: bool) -> None:
    """Two passes over one file: the first finds each post's best pairs, the second writes rows in file order."""
    writer = loop.writer
    writer.add_input(path)
    writer.split(split)
    post_cap = shp.PostCap(cap) if cap > 0 else None
    for record in iter_records(path):
        if isinstance(record, BadRecord) or post_cap is None:
            continue
        try:
            pair = shp.shp_pair(record.value, domain)
        except RowError:
            continue
        if pair.score_ratio is None or pair.score_ratio >= min_score_ratio:
            post_cap.offer(pair.post, pair.score_ratio, record.index)
    kept = post_cap.kept() if post_cap is not None else set()
    unfiltered = no_post_id = 0
    for record in progress(iter_records(path), desc=f"shp/{domain} {split}", quiet=quiet):
        if isinstance(record, BadRecord):
            loop.reject(Reject.of_bad_record(record))
            continue
        where = {"file": record.file, "line": record.line, "index": record.index}
        try:
            pair = shp.shp_pair(record.value, domain)
        except RowError as e:
            loop.reject(Reject.of(e, record.value, **where))
            continue
        unfiltered += pair.score_ratio is None and min_score_ratio > 0
        no_post_id += record.value.get("post_id") is None
        if pair.score_ratio is not None and pair.score_ratio < min_score_ratio:  # filtered out, whatever --on-error
            loop.quarantine(Reject("low_score_ratio", f"score ratio {pair.score_ratio:.3g} < {min_score_ratio:g}",
                                   record.value, **where))
        elif post_cap is not None and record.index not in kept:
            total = post_cap.pairs_per_post[pair.post]
            loop.quarantine(Reject("over_post_cap", f"post {pair.post} has {total} pairs; kept the {cap} with the "
                                   "largest score ratio", record.value, **where))
        else:
            loop.row(pair.row, split, record.file)
    if unfiltered:
        writer.warn(f"{path}: --min-score-ratio not applied to {unfiltered} record(s) without score_ratio or "
                    "score_A/score_B" + ("; the per-post cap kept the first pairs in file order" if cap > 0 else ""))
    if no_post_id and cap > 0:
        writer.warn(f"{path}: {no_post_id} record(s) without post_id: the per-post cap grouped them by prompt text")


def download_shp(
    out: PathLike,
    *,
    domains: Iterable[str] | None = None,
    min_score_ratio: float = shp.RECOMMENDED_MIN_SCORE_RATIO,
    max_pairs_per_post: int = shp.RECOMMENDED_MAX_PAIRS_PER_POST,
    from_path: PathLike | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    on_error: str = "quarantine",
) -> dict[str, Any]:
    """Stanford SHP into ``out``: splits train/validation/test, ``source`` = ``shp/<domain>``, ``group`` = post_id.

    Defaults follow the dataset card: score ratio >= 2, at most 5 pairs per post (0 turns either off).
    """
    if min_score_ratio < 0 or max_pairs_per_post < 0:
        raise PrefdataError("--min-score-ratio and --max-pairs-per-post must be >= 0 (0 turns them off)")
    wanted = list(domains) if domains else None
    layout = "<domain>/{train,validation,test}.json"
    patterns = [f"{d}/*.json" for d in wanted] if wanted else ["*/*.json"]
    options = _options(domains=wanted, min_score_ratio=min_score_ratio, max_pairs_per_post=max_pairs_per_post,
                       from_path=from_path, revision=revision, on_error=on_error)
    check_output_dir(Path(out), overwrite)
    root = _root(from_path, shp.REPO_ID, patterns, layout, revision)
    with DatasetWriter(out, command="download shp", options=options, overwrite=overwrite) as writer:
        loop = RecordLoop(writer, on_error)
        for domain in _shp_domains(root, wanted):
            for split in shp.SPLITS:
                path = root / domain / f"{split}.json"
                if not path.exists():
                    writer.warn(f"{path} is missing: split {split} of {domain} not imported")
                    continue
                _import_shp_file(loop, path, split, domain, min_score_ratio=min_score_ratio,
                                 cap=max_pairs_per_post, quiet=quiet)
        loop.finish()
        writer.extra["hub"] = {"repo_id": shp.REPO_ID, "revision": revision, "local_copy": from_path is not None}
    return writer.manifest


def download_hub(
    repo_id: str,
    out: PathLike,
    *,
    format: str = "auto",
    kind: str = "preference",
    mapping: dict[str, str] | None = None,
    from_path: PathLike | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    quiet: bool = False,
    on_error: str = "quarantine",
) -> dict[str, Any]:
    """Any Hub dataset whose files `prefdata import` can read (``format``/``mapping`` as for import).

    Splits come from the file names as `datasets` infers them (``train``, ``validation``/``valid``/``dev``,
    ``test``); a file naming no split goes to ``train``. ``source`` = ``hub/<repo id>``.
    """
    from prefdata.jobs.importer import iter_parsed

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PrefdataError(f"{repo_id!r} is neither hh-rlhf, shp nor a Hub dataset id (owner/name)", field="NAME")
    patterns = [f"*{suffix}" for suffix in hub.DATA_SUFFIXES]  # fnmatch: * also matches folders
    options = _options(repo_id=repo_id, format=format, kind=kind, mapping=mapping or {}, from_path=from_path,
                       revision=revision, on_error=on_error)
    check_output_dir(Path(out), overwrite)
    root = _root(from_path, repo_id, patterns, "the repository's files", revision)
    splits = hub.data_files(root)
    source = f"hub/{repo_id}"
    schema_id = UNSUP_SCHEMA_ID if kind == "unsup" else PREFERENCE_SCHEMA_ID
    with DatasetWriter(out, command="download", options=options, schema_id=schema_id, overwrite=overwrite) as writer:
        loop = RecordLoop(writer, on_error)
        for split, paths in sorted(splits.items()):
            writer.split(split)
            for path in paths:
                writer.add_input(path)
                parsed = iter_parsed(path, format, mapping, source, kind=kind)
                loop.consume(progress(parsed, desc=f"{source} {split}", quiet=quiet), split)
        loop.finish()
        writer.extra["hub"] = {"repo_id": repo_id, "revision": revision, "local_copy": from_path is not None,
                               "files": {split: [str(p.relative_to(root)) for p in paths]
                                         for split, paths in sorted(splits.items())}}
    return writer.manifest
