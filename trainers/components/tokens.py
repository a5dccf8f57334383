"""Tokenise a split once, keep it as memory-mapped Arrow token columns, pad only in the collator.

DeepSpeed-Chat tokenises one example per call, pads every row to the max length and pickles the lot with `torch.save`;
every rank repeats that or loads the whole file into RAM. Here a split is tokenised with the tokenizer's batch path,
stored unpadded as Arrow ``list<int32>`` columns in one IPC file, keyed by everything that changes the tokens, built by
one process under a `filelock` lock while the others wait, and memory-mapped by every rank.

Trust: the key is the content, not a name. It holds the sha256 of the split's shards (read from a manifest whose shards
were just checked against it, so a damaged copy of a dataset is refused before it can build or open an entry), the
sha256 of the tokenizer's files and the settings. An entry records the size and sha256 of its own ``tokens.arrow`` and
is checked against them whenever it is opened; a damaged entry is rebuilt with a one-line warning, never used.

Phase layouts (one row per example):

Replies are rendered from `reply` (a continuation with tool calls renders as the template writes it), and a
phase takes only the rows `serves` gives it: an unpaired (KTO-labelled) row is never sft data, nor an rm pair
(the ``kto`` layout reads it).

- ``sft``: ``input_ids`` (prompt + chosen reply + EOS) and ``prompt_tokens`` (how many leading tokens are prompt; the
  collator (`trainers.components.collate`) turns them into ``-100`` labels; 0 with ``train_on_prompt``). Storing the count instead of a second token
  column halves the cache; the labels are rebuilt exactly.
- ``rm``: ``chosen_input_ids``, ``rejected_input_ids`` (each prompt + reply + EOS), ``margin`` (``meta.margin`` or 0)
  and ``chosen_prompt_tokens``/``rejected_prompt_tokens`` (DPO's log-probs cover the reply only; the two differ only
  when left truncation cut the sides differently).
- ``kto``: one labelled reply per example, read from the ``rm`` splits: ``input_ids`` (prompt + reply + EOS),
  ``prompt_tokens`` and ``label`` (1 desirable, 0 undesirable). An unpaired row gives its one reply; a pair gives its
  chosen reply as desirable and its rejected reply as undesirable, as KTO reads paired data.
- ``ppo``: ``prompt_input_ids`` (the generation prompt).
- ``ptx``: ``input_ids`` of unsupervised text + EOS, cut into blocks of at most ``max_seq_len``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from filelock import FileLock

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import PHASES as DATA_PHASES
from prefdata.contract.phases import phase_splits, serves
from prefdata.contract.render import TEMPLATES, render
from prefdata.contract.row import UNSUP_SCHEMA_ID, reply, row_meta
from prefdata.pipeline.progress import progress
from prefdata.storage.dataset import file_sha256, verify_directory
from prefdata.storage.rows import python_rows
from trainers.components.token_store import (
    CACHE_FORMAT,
    LAYOUT,
    TOKEN_IDS,
    TOKENS_FILE,
    DamagedEntry,
    TokenCache,
    cache_root,
    discard,
    open_verified,
)

PHASES = (*DATA_PHASES, "kto", "ptx")  # the three data phases, labelled replies for KTO, unsupervised text for ptx
TRUNCATION = ("drop", "left", "right")
_BATCH = 1024


@dataclass(frozen=True)
class TokenizeSpec:
    """Everything besides the data and the tokenizer that changes the cached tokens (and so is part of the key)."""

    phase: str
    template: str = "dschat"
    max_seq_len: int = 512
    max_prompt_len: int = 256
    truncation: str = "drop"
    train_on_prompt: bool = False

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise PrefdataError(f"unknown phase {self.phase!r}; choose one of {', '.join(PHASES)}")
        if self.template not in TEMPLATES:
            raise PrefdataError(f"unknown template {self.template!r}; choose one of {', '.join(TEMPLATES)}")
        if self.truncation not in TRUNCATION:
            raise PrefdataError(f"unknown truncation {self.truncation!r}; choose one of {', '.join(TRUNCATION)}")
        if self.max_seq_len < 2 or self.max_prompt_len < 1:
            raise PrefdataError("max lengths must be positive")


# ---------------------------------------------------------------------------------------------------------- keys


def tokenizer_fingerprint(tokenizer: Any, template: str = "tokenizer") -> str:
    """sha256 over the files the tokenizer saves: vocabulary, merges and special tokens count, and the chat template
    when it renders the text (``template == "tokenizer"``). With dschat/chatml it changes no token: a checkpoint, which
    saves its run's chat template, keeps the cache entries of the tokenizer it was trained with."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="prefdata-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            name = path.relative_to(tmp).as_posix()
            if not path.is_file() or (template != "tokenizer" and _is_chat_template(name)):
                continue
            content = path.read_bytes()
            if template != "tokenizer" and name == "tokenizer_config.json":
                config = {k: v for k, v in json.loads(content).items() if k != "chat_template"}
                content = json.dumps(config, sort_keys=True).encode()
            digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


def _is_chat_template(name: str) -> bool:
    """The files `save_pretrained` writes a chat template to (transformers 4.4x and 5)."""
    return name in ("chat_template.jinja", "chat_template.json") or name.startswith("additional_chat_templates/")


def split_checksums(data_dir: str | os.PathLike, split: str, phase: str) -> list[str]:
    """The sha256 of each shard of ``split``, from a manifest whose shards have just been checked against it (present,
    sizes, sha256, rows adding up): a damaged copy of a dataset is refused here, before it can build or open an entry.

    Checking every shard's sha256 costs one read of the directory per run (bench/RESULTS.md, "token cache trust")."""
    manifest = verify_directory(data_dir, checksums=True)
    schema = manifest.get("schema")
    if (phase == "ptx") != (schema == UNSUP_SCHEMA_ID):
        wanted = f"a {UNSUP_SCHEMA_ID} directory" if phase == "ptx" else "a preference dataset"
        raise PrefdataError(f"is a {schema} directory; the {phase} phase needs {wanted}", file=str(data_dir))
    splits = manifest["splits"]
    if split not in splits:
        have = ", ".join(splits) or "none"
        raise PrefdataError(f"has no split {split!r} (splits: {have}); is it a `prefdata split` output?", file=str(data_dir))
    return [str(shard.get("sha256")) for shard in splits[split]["shards"]]


def cache_key(shard_checksums: list[str], tokenizer_hash: str, spec: TokenizeSpec) -> str:
    material = {"format": CACHE_FORMAT, "shards": shard_checksums, "tokenizer": tokenizer_hash, **asdict(spec)}
    if spec.phase != "ppo":
        material.pop("max_prompt_len")
    if spec.phase != "sft":
        material.pop("train_on_prompt")
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


# ---------------------------------------------------------------------------------------------------- tokenising


class _Encoder:
    """Renders and batch-tokenises; knows the tokenizer's EOS and whether it starts sequences with BOS."""

    def __init__(self, tokenizer: Any, spec: TokenizeSpec) -> None:
        if tokenizer.eos_token_id is None:
            raise PrefdataError("the tokenizer has no EOS token; every reply must end with one")
        self.tokenizer = tokenizer
        self.spec = spec
        self.eos = int(tokenizer.eos_token_id)
        bos = tokenizer.bos_token_id
        probe = tokenizer("a")["input_ids"]
        self.bos = int(bos) if bos is not None and probe and probe[0] == bos else None

    def render(self, prompt, reply=None) -> str:
        return render(prompt, reply, self.spec.template, self.tokenizer)

    def encode(self, texts: list[str], bos: bool = True) -> list[list[int]]:
        """Batch-tokenise without special tokens (straight through the Rust backend when there is one), then add BOS
        where the tokenizer would have."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode_batch_fast"):
            batch = [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        else:
            batch = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        if not bos or self.bos is None:
            return batch
        return [ids if ids and ids[0] == self.bos else [self.bos, *ids] for ids in batch]

    def encode_replies(self, prompts: list[str], fulls: list[str], prompt_ids: list[list[int]] | None = None
                       ) -> list[tuple[list[int], int]]:
        """Token ids of prompt + reply + EOS and the prompt's token count, for each (prompt, full text) pair.

        The prompt and the reply (the full rendering minus the prompt's, which is a prefix of it) are tokenised apart
        and joined: these are exactly the tokens the actor sees when it continues the prompt in PPO, a pair's prompt is
        tokenised once for both replies, and no offset mapping is needed.
        """
        if prompt_ids is None:
            prompt_ids = self.encode(prompts)
        replies = [full[len(prompt) :] for prompt, full in zip(prompts, fulls)]
        reply_ids = self.encode(replies, bos=False)
        out = []
        for head, tail in zip(prompt_ids, reply_ids):
            ids = [*head, *tail]
            if not tail or tail[-1] != self.eos:
                ids.append(self.eos)
            out.append((ids, len(head)))
        return out


def _fit(ids: list[int], n_prompt: int, limit: int, policy: str) -> tuple[list[int], int] | None:
    """Apply the over-length policy; None means dropped."""
    if len(ids) <= limit:
        return ids, n_prompt
    if policy == "drop":
        return None
    if policy == "left":
        cut = len(ids) - limit
        return ids[cut:], max(0, n_prompt - cut)
    return ids[:limit], min(n_prompt, limit)


def _tokenize_batch(rows: list[dict], enc: _Encoder, counts: Counter) -> dict[str, list]:
    spec = enc.spec
    columns: dict[str, list] = {name: [] for name in LAYOUT[spec.phase].names}
    if spec.phase == "ppo":
        for ids in enc.encode([enc.render(r["prompt"]) for r in rows]):
            fitted = _fit(ids, len(ids), spec.max_prompt_len, spec.truncation)
            if fitted is None:
                counts["dropped_too_long"] += 1
                continue
            counts["truncated"] += len(fitted[0]) < len(ids)
            columns["prompt_input_ids"].append(fitted[0])
        return columns
    if spec.phase == "ptx":
        for ids in enc.encode([r["text"] for r in rows]):  # ptx: text as it is, BOS if the model uses one
            ids = [*ids, enc.eos]
            blocks = [ids[i : i + spec.max_seq_len] for i in range(0, len(ids), spec.max_seq_len)]
            counts["split_into_blocks"] += len(blocks) > 1
            columns["input_ids"].extend(blocks)
        return columns
    if spec.phase == "kto":
        return _tokenize_labelled(rows, enc, counts, columns)

    use = [r for r in rows if serves(r, spec.phase)]
    counts["not_for_phase"] += len(rows) - len(use)
    prompts = [enc.render(r["prompt"]) for r in use]
    prompt_ids = enc.encode(prompts)
    chosen = enc.encode_replies(prompts, [enc.render(r["prompt"], reply(r, "chosen")) for r in use], prompt_ids)
    if spec.phase == "sft":
        for ids, n_prompt in chosen:
            fitted = _fit(ids, n_prompt, spec.max_seq_len, spec.truncation)
            if fitted is None:
                counts["dropped_too_long"] += 1
                continue
            counts["truncated"] += len(fitted[0]) < len(ids)
            n_prompt = 0 if spec.train_on_prompt else fitted[1]
            if n_prompt >= len(fitted[0]):
                counts["dropped_no_reply_tokens"] += 1
                continue
            columns["input_ids"].append(fitted[0])
            columns["prompt_tokens"].append(n_prompt)
        return columns
    rejected = enc.encode_replies(prompts, [enc.render(r["prompt"], reply(r, "rejected")) for r in use], prompt_ids)
    for row, (c_ids, c_prompt), (r_ids, r_prompt) in zip(use, chosen, rejected):
        c_fit = _fit(c_ids, c_prompt, spec.max_seq_len, spec.truncation)
        r_fit = _fit(r_ids, r_prompt, spec.max_seq_len, spec.truncation)
        if c_fit is None or r_fit is None:
            counts["dropped_too_long"] += 1
            continue
        counts["truncated"] += len(c_fit[0]) < len(c_ids) or len(r_fit[0]) < len(r_ids)
        if c_fit[0] == r_fit[0]:
            counts["dropped_identical_after_truncation"] += 1
            continue
        columns["chosen_input_ids"].append(c_fit[0])
        columns["rejected_input_ids"].append(r_fit[0])
        columns["margin"].append(float(row_meta(row).get("margin") or 0.0))
        columns["chosen_prompt_tokens"].append(c_fit[1])
        columns["rejected_prompt_tokens"].append(r_fit[1])
    return columns


def labelled_replies(row: dict) -> list[tuple[str, bool]]:
    """The (side, desirable) replies KTO reads from a row: an unpaired row's one reply, or both replies of a pair."""
    label = row.get("label")
    if label is not None:
        return [("chosen" if label else "rejected", bool(label))]
    if serves(row, "rm"):
        return [("chosen", True), ("rejected", False)]
    return []


def _tokenize_labelled(rows: list[dict], enc: _Encoder, counts: Counter, columns: dict[str, list]) -> dict[str, list]:
    """The ``kto`` layout: one example per labelled reply (`labelled_replies`)."""
    examples = [(row, side, desirable) for row in rows for side, desirable in labelled_replies(row)]
    counts["not_for_phase"] += sum(1 for row in rows if not labelled_replies(row))
    prompts = [enc.render(row["prompt"]) for row, _, _ in examples]
    fulls = [enc.render(row["prompt"], reply(row, side)) for row, side, _ in examples]
    for (ids, n_prompt), (_, _, desirable) in zip(enc.encode_replies(prompts, fulls), examples):
        fitted = _fit(ids, n_prompt, enc.spec.max_seq_len, enc.spec.truncation)
        if fitted is None:
            counts["dropped_too_long"] += 1
            continue
        counts["truncated"] += len(fitted[0]) < len(ids)
        columns["input_ids"].append(fitted[0])
        columns["prompt_tokens"].append(fitted[1])
        columns["label"].append(int(desirable))
    return columns


def build_cache(
    data_dir: str | os.PathLike, split: str, tokenizer: Any, spec: TokenizeSpec, path: Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Tokenise one split into the IPC file ``path`` (written under a temporary name, then renamed); return counts."""
    from prefdata.storage.dataset import load

    started = time.perf_counter()
    dataset = load(data_dir)[split]
    enc = _Encoder(tokenizer, spec)
    schema = LAYOUT[spec.phase]
    counts: Counter[str] = Counter()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows_out = tokens = 0
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        batches = dataset.with_format("arrow").iter(batch_size=_BATCH)
        total = -(-len(dataset) // _BATCH)
        for table in progress(batches, desc=f"tokenise {split}", total=total, quiet=quiet, unit="batch"):
            rows = python_rows(table)
            counts["rows_in"] += len(rows)
            columns = _tokenize_batch(rows, enc, counts)
            batch = pa.RecordBatch.from_pydict(columns, schema=schema)
            rows_out += batch.num_rows
            tokens += sum(len(ids) for f in schema if f.type == TOKEN_IDS for ids in columns[f.name])
            if batch.num_rows:
                writer.write_batch(batch)
    os.replace(tmp, path)
    counts = Counter({k: v for k, v in counts.items() if v})
    return {
        "rows_in": counts.pop("rows_in", 0),
        "rows_out": rows_out,
        "tokens": tokens,
        **dict(sorted(counts.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }


# ------------------------------------------------------------------------------------------------------- entries


def tokenized(
    data_dir: str | os.PathLike,
    split: str,
    tokenizer: Any,
    spec: TokenizeSpec,
    cache_dir: str | os.PathLike | None = None,
    *,
    quiet: bool = False,
) -> TokenCache:
    """The cached tokens of ``split`` for ``spec``: built once under an exclusive file lock, then memory-mapped.

    Every process may call this at once; the first to take the lock builds, the others block on the lock and find the
    finished entry. A shared cache dir gives one build per job, a node-local one one build per node. The default dir
    is ``$PREFDATA_HOME/tokens``. The dataset is verified first, the entry whenever it is opened (module docstring).
    """
    root = cache_root(cache_dir)
    checksums, tokenizer_hash = split_checksums(data_dir, split, spec.phase), tokenizer_fingerprint(tokenizer, spec.template)
    key = cache_key(checksums, tokenizer_hash, spec)
    entry = root / f"{spec.phase}-{split}-{key}"
    if entry.exists():
        try:
            return open_verified(entry, key, spec.phase)
        except DamagedEntry:
            pass  # looked at again under the lock: another process may be replacing it right now
    with FileLock(root / f"{entry.name}.lock"):
        if entry.exists() or entry.is_symlink():
            try:
                return open_verified(entry, key, spec.phase)
            except DamagedEntry as damage:
                print(f"prefdata: warning: {entry}: damaged token cache entry ({damage}); rebuilding it", file=sys.stderr)
                discard(entry)
        for stale in root.glob(f".{entry.name}.tmp-*"):  # a builder that died; we hold the lock, so it is dead
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".{entry.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        counts = build_cache(data_dir, split, tokenizer, spec, tmp / TOKENS_FILE, quiet=quiet)
        info = {
            "format": CACHE_FORMAT,
            "key": key,
            "data": str(Path(data_dir).resolve()),
            "split": split,
            "shards_sha256": checksums,
            "tokenizer_sha256": tokenizer_hash,
            "spec": asdict(spec),
            "counts": counts,
            "tokens": {"bytes": (tmp / TOKENS_FILE).stat().st_size, "sha256": file_sha256(tmp / TOKENS_FILE)},
            "built_by": {"host": socket.gethostname(), "pid": os.getpid(), "rank": os.environ.get("RANK", "0")},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, entry)
    return TokenCache(entry, built=True)


def tokenized_phase(cfg: Any, data_phase: str, tokenizer: Any, spec: TokenizeSpec) -> tuple[TokenCache, TokenCache]:
    """The token caches of ``<data_phase>_train`` and ``<data_phase>_eval`` (`tokenized`), with a run's ``data``,
    ``cache_dir`` and ``quiet`` settings: the first step every supervised recipe takes."""
    return tuple(tokenized(cfg.data, split, tokenizer, spec, cfg.cache_dir, quiet=cfg.quiet)
                 for split in phase_splits(data_phase))
