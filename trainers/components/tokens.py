"""Tokenise a split once, keep it as memory-mapped Arrow token columns, pad only in the collator.

DeepSpeed-Chat tokenises one example per call, pads every row to the max length and pickles the lot with `torch.save`;
every rank repeats that or loads the whole file into RAM. Here a split is tokenised with the tokenizer's batch path,
stored unpadded as Arrow ``list<int32>`` columns in one IPC file, keyed by everything that changes the tokens, built by
one process under a `filelock` lock while the others wait, and memory-mapped by every rank.

Phase layouts (one row per example):

- ``sft``: ``input_ids`` (prompt + chosen reply + EOS) and ``prompt_tokens`` (how many leading tokens are prompt; the
  collator turns them into ``-100`` labels; 0 with ``train_on_prompt``). Storing the count instead of a second token
  column halves the cache; the labels are rebuilt exactly.
- ``rm``: ``chosen_input_ids``, ``rejected_input_ids`` (each prompt + reply + EOS) and ``margin`` (``meta.margin`` or 0).
- ``ppo``: ``prompt_input_ids`` (the generation prompt).
- ``ptx``: ``input_ids`` of unsupervised text + EOS, cut into blocks of at most ``max_seq_len``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from filelock import FileLock

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import PHASES as DATA_PHASES
from prefdata.contract.phases import serves
from prefdata.contract.render import TEMPLATES, render
from prefdata.contract.row import row_meta
from prefdata.pipeline.progress import progress
from prefdata.storage.dataset import read_manifest
from prefdata.storage.home import token_cache_dir

CACHE_FORMAT = 1
PHASES = (*DATA_PHASES, "ptx")  # the three data phases, and unsupervised text for PPO's ptx loss
TRUNCATION = ("drop", "left", "right")
IGNORE_INDEX = -100
_BATCH = 1024
_TOKENS = pa.list_(pa.int32())
_LAYOUT = {
    "sft": pa.schema([("input_ids", _TOKENS), ("prompt_tokens", pa.int32())]),
    "rm": pa.schema([("chosen_input_ids", _TOKENS), ("rejected_input_ids", _TOKENS), ("margin", pa.float32())]),
    "ppo": pa.schema([("prompt_input_ids", _TOKENS)]),
    "ptx": pa.schema([("input_ids", _TOKENS)]),
}


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


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 over the files the tokenizer saves: vocabulary, merges, special tokens and chat template all count."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="prefdata-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(tmp).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def split_fingerprint(data_dir: str | os.PathLike, split: str) -> str:
    """The input fingerprint recorded by the writer of the directory (content hash of the split's shards)."""
    manifest = read_manifest(data_dir)
    splits = manifest.get("splits", {})
    if split not in splits:
        have = ", ".join(splits) or "none"
        raise PrefdataError(f"has no split {split!r} (splits: {have}); is it a `prefdata split` output?", file=str(data_dir))
    return splits[split]["fingerprint"]


def cache_key(fingerprint: str, tokenizer_hash: str, spec: TokenizeSpec) -> str:
    material = {"format": CACHE_FORMAT, "input": fingerprint, "tokenizer": tokenizer_hash, **asdict(spec)}
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
    columns: dict[str, list] = {name: [] for name in _LAYOUT[spec.phase].names}
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

    use = [r for r in rows if serves(r, spec.phase)]
    counts["not_for_phase"] += len(rows) - len(use)
    prompts = [enc.render(r["prompt"]) for r in use]
    prompt_ids = enc.encode(prompts)
    chosen = enc.encode_replies(prompts, [enc.render(r["prompt"], r["chosen"]) for r in use], prompt_ids)
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
    rejected = enc.encode_replies(prompts, [enc.render(r["prompt"], r["rejected"]) for r in use], prompt_ids)
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
    return columns


def build_cache(
    data_dir: str | os.PathLike, split: str, tokenizer: Any, spec: TokenizeSpec, path: Path, *, quiet: bool = False
) -> dict[str, Any]:
    """Tokenise one split into the IPC file ``path`` (written under a temporary name, then renamed); return counts."""
    from prefdata.storage.dataset import load

    started = time.perf_counter()
    dataset = load(data_dir)[split]
    enc = _Encoder(tokenizer, spec)
    schema = _LAYOUT[spec.phase]
    counts: Counter[str] = Counter()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    rows_out = tokens = 0
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        batches = dataset.with_format("arrow").iter(batch_size=_BATCH)
        total = -(-len(dataset) // _BATCH)
        for table in progress(batches, desc=f"tokenise {split}", total=total, quiet=quiet, unit="batch"):
            rows = table.to_pylist()
            counts["rows_in"] += len(rows)
            columns = _tokenize_batch(rows, enc, counts)
            batch = pa.RecordBatch.from_pydict(columns, schema=schema)
            rows_out += batch.num_rows
            tokens += sum(len(ids) for f in schema if f.type == _TOKENS for ids in columns[f.name])
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


# ------------------------------------------------------------------------------------------------------- reading


def _view(buffer: pa.Buffer, dtype: Any, start: int, count: int) -> np.ndarray:
    """A read-only numpy view of part of an Arrow buffer (zero-copy; no pandas import as `to_numpy` would do)."""
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=start * np.dtype(dtype).itemsize)


class _Chunked:
    """Maps a row index to (chunk, index in chunk) for a column stored in several record batches."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self._starts = np.cumsum([0] + [len(c) for c in column.chunks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        chunk = int(np.searchsorted(self._starts, i, side="right")) - 1
        return chunk, i - int(self._starts[chunk])


class TokenColumn(_Chunked):
    """Row ``i`` of a memory-mapped ``list<int32>`` column as a numpy view: no copy, nothing loaded up front."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        super().__init__(column)
        self._chunks = []
        for c in column.chunks:
            child = c.values
            offsets = _view(c.buffers()[1], np.int32, c.offset, len(c) + 1)
            values = _view(child.buffers()[1], np.int32, child.offset, len(child)) if len(child) else np.zeros(0, np.int32)
            self._chunks.append((offsets, values))

    def __getitem__(self, i: int) -> np.ndarray:
        chunk, j = self.locate(i)
        offsets, values = self._chunks[chunk]
        return values[offsets[j] : offsets[j + 1]]


class ScalarColumn(_Chunked):
    """Row ``i`` of a memory-mapped fixed-width column (``prompt_tokens``, ``margin``)."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        super().__init__(column)
        dtype = column.type.to_pandas_dtype()
        self._chunks = [_view(c.buffers()[1], dtype, c.offset, len(c)) for c in column.chunks]

    def __getitem__(self, i: int):
        chunk, j = self.locate(i)
        return self._chunks[chunk][j]


class TokenCache:
    """One phase of one split, tokenised: a map-style dataset of dicts of numpy arrays / numbers."""

    def __init__(self, directory: Path, built: bool) -> None:
        self.directory = directory
        self.built = built
        self.info = json.loads((directory / "info.json").read_text(encoding="utf-8"))
        self.table = pa.ipc.open_file(pa.memory_map(str(directory / "tokens.arrow"), "r")).read_all()
        self.columns = {
            f.name: TokenColumn(self.table[f.name]) if f.type == _TOKENS else ScalarColumn(self.table[f.name])
            for f in self.table.schema
        }

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {name: column[i] for name, column in self.columns.items()}


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
    is ``$PREFDATA_HOME/tokens``.
    """
    cache_root = Path(cache_dir) if cache_dir is not None else token_cache_dir()
    cache_root.mkdir(parents=True, exist_ok=True)
    fingerprint, tokenizer_hash = split_fingerprint(data_dir, split), tokenizer_fingerprint(tokenizer)
    key = cache_key(fingerprint, tokenizer_hash, spec)
    entry = cache_root / f"{spec.phase}-{split}-{key}"
    if (entry / "info.json").exists():
        return TokenCache(entry, built=False)
    with FileLock(cache_root / f"{entry.name}.lock"):
        if (entry / "info.json").exists():
            return TokenCache(entry, built=False)
        for stale in cache_root.glob(f".{entry.name}.tmp-*"):  # a builder that died; we hold the lock, so it is dead
            shutil.rmtree(stale, ignore_errors=True)
        tmp = cache_root / f".{entry.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        counts = build_cache(data_dir, split, tokenizer, spec, tmp / "tokens.arrow", quiet=quiet)
        info = {
            "format": CACHE_FORMAT,
            "key": key,
            "data": str(Path(data_dir).resolve()),
            "split": split,
            "input_fingerprint": fingerprint,
            "tokenizer_sha256": tokenizer_hash,
            "spec": asdict(spec),
            "counts": counts,
            "built_by": {"host": socket.gethostname(), "pid": os.getpid(), "rank": os.environ.get("RANK", "0")},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, entry)
    return TokenCache(entry, built=True)


# ----------------------------------------------------------------------------------------------------- collators


def _pad(sequences: list[np.ndarray], value: int, left: bool = False, multiple: int = 1):
    import torch

    width = max(len(s) for s in sequences)
    width = -(-width // multiple) * multiple
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        n = len(s)
        sl = slice(width - n, width) if left else slice(0, n)
        out[i, sl] = torch.from_numpy(np.asarray(s, dtype=np.int64))
        mask[i, sl] = 1
    return out, mask


def collate_sft(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest row; labels are the ids with the prompt and the padding set to -100."""
    input_ids, attention_mask = _pad([e["input_ids"] for e in examples], pad_id)
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    for i, e in enumerate(examples):
        labels[i, : int(e.get("prompt_tokens", 0))] = IGNORE_INDEX
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_pairs(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Chosen rows then rejected rows in one right-padded batch (one forward pass scores both)."""
    import torch

    sequences = [e["chosen_input_ids"] for e in examples] + [e["rejected_input_ids"] for e in examples]
    input_ids, attention_mask = _pad(sequences, pad_id)
    margin = torch.tensor([float(e["margin"]) for e in examples], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "margin": margin}


def collate_prompts(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """Left-pad prompts so that generation continues right after each prompt's last token."""
    input_ids, attention_mask = _pad([e["prompt_input_ids"] for e in examples], pad_id, left=True)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
