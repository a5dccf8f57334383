"""Exact duplicates, near-duplicates (MinHash + LSH) and eval-set decontamination over Arrow tables.

Everything here works on whole columns (pyarrow compute + numpy) so a million rows never become Python dicts. Every
decision is independent of row order: among duplicates the row that sorts first by content keeps its place.
MinHash and LSH are hand-written, kept: datasketch made `split --near-dup 0.9` 4.5-5x slower and decided differently on
the real HH rows at thresholds 0.5-0.8 (`bench/infra.py` part c).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefdata.storage.rows import reply_texts

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_BLOCK_VALUES = 1 << 20
_ROLL_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2^64
_ROLL_INVERSE = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))
_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer: distinct inputs stay distinct, and nearby inputs land far apart."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64, copy=True)
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash64_strings(values: Sequence[str], salt: str = "") -> np.ndarray:
    """sha256-derived 64-bit hashes of strings (stable across processes, unlike Python's `hash`)."""
    out = np.empty(len(values), dtype=np.uint64)
    prefix = salt.encode("utf-8")
    for i, value in enumerate(values):
        out[i] = int.from_bytes(hashlib.sha256(prefix + value.encode("utf-8")).digest()[:8], "big")
    return out


def hash64_column(column: pa.Array | pa.ChunkedArray, salt: str = "") -> np.ndarray:
    """Hash each value of a string column, hashing every distinct value once."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.unify_dictionaries() if hasattr(encoded, "unify_dictionaries") else encoded
        encoded = encoded.combine_chunks()
    dictionary = encoded.dictionary.to_pylist()
    hashes = hash64_strings(dictionary, salt)
    return hashes[encoded.indices.to_numpy(zero_copy_only=False)]


def id_values(ids: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Row ids (16 hex chars, design §1) as uint64 without a Python loop; None when some id is not of that form."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    n = len(ids)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    if ids.null_count or not pc.all(pc.equal(pc.utf8_length(ids), 16)).as_py():
        return None
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32)[ids.offset : ids.offset + n + 1]
    data = np.frombuffer(ids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(n, 16)
    nibbles = _HEX[data]
    if (nibbles == 255).any():
        return None
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    return np.bitwise_or.reduce(nibbles.astype(np.uint64) << shifts, axis=1)


def exact_duplicates(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose `id` repeats an earlier row in content order; returns ``(dropped, kept_for_each_dropped)`` indices.

    The row kept is the first by (id, source, group, meta, scores), so the choice does not depend on input order.
    """
    if table.num_rows < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = ["id", "source", "group", "meta", "chosen_score", "rejected_score"]
    order = pc.sort_indices(table.select(keys), sort_keys=[(k, "ascending") for k in keys])
    sorted_ids = pc.take(table.column("id"), order)
    same = pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
    order_np = order.to_numpy()
    repeat = np.flatnonzero(same) + 1
    if not len(repeat):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    run_start = np.maximum.accumulate(np.where(np.concatenate([[True], ~same]), np.arange(len(order_np)), 0))
    return order_np[repeat].astype(np.int64), order_np[run_start[repeat]].astype(np.int64)


def prompt_texts(prompt: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One string per row: the contents of the prompt's messages joined by newlines."""
    prompt = prompt.combine_chunks() if isinstance(prompt, pa.ChunkedArray) else prompt
    contents = pa.ListArray.from_arrays(prompt.offsets, prompt.values.field("content"))
    return pc.binary_join(contents, "\n")


def normalise(texts: pa.Array) -> pa.Array:
    """Case and whitespace do not make a prompt new: lower-case, collapse whitespace, trim."""
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), r"\s+", " "))


def prompt_keys(table: pa.Table) -> np.ndarray:
    """64-bit keys of the normalised prompt text, used to find eval prompts inside training data."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=np.uint64)
    keys = [hash64_column(normalise(prompt_texts(chunk.column("prompt"))), "prompt\0")
            for chunk in _row_chunks(table, 200_000)]
    return np.concatenate(keys)


def row_texts(table: pa.Table) -> pa.Array:
    """Prompt + chosen + rejected as one string (replies stored as turns included): what near-duplicate detection
    compares."""
    prompt = prompt_texts(table.column("prompt"))
    chosen = pc.fill_null(reply_texts(table, "chosen"), "")
    rejected = pc.fill_null(reply_texts(table, "rejected"), "")
    return pc.binary_join_element_wise(prompt, chosen, rejected, "\n")


def _row_chunks(table: pa.Table, size: int):
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) whose S-curve midpoint (1/b)^(1/r) sits just below ``threshold`` (favours recall)."""
    best = None
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        midpoint = (1.0 / bands) ** (1.0 / rows)
        score = threshold - midpoint if midpoint <= threshold else 1.0 + midpoint - threshold
        if best is None or score < best[0]:
            best = (score, bands, rows)
    assert best is not None
    return best[1], best[2]


def words(texts: pa.Array) -> pa.ListArray:
    """Lower-cased words of each text, punctuation removed: what shingles, MinHash and decontamination compare."""
    return pc.utf8_split_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), r"[^\w\s]+", " "))


class Words:
    """The words of many texts, hashed once: `shingles` then reads runs of any length without re-tokenising."""

    def __init__(self, texts: pa.Array) -> None:
        split = words(texts)
        offsets = split.offsets.to_numpy().astype(np.int64)
        self.offsets = offsets - offsets[0]
        self.flat = split.flatten()
        self.hashes = hash64_column(self.flat, "word\0") if len(self.flat) else np.zeros(0, dtype=np.uint64)
        self.row = np.repeat(np.arange(len(texts)), np.diff(self.offsets))
        self._rolling: tuple[np.ndarray, np.ndarray] | None = None

    def runs(self, ngram: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like `shingles` (no short texts), but a polynomial rolling hash: after one prefix sum, each run length costs
        a few array operations instead of ``ngram`` passes (decontamination tries several lengths over millions of
        words: 100k HH rows, `bench/decontam.py`). A different hash from `shingles`, which MinHash keeps unchanged."""
        n = len(self.flat)
        with np.errstate(over="ignore"):
            if self._rolling is None:  # hash(run i..i+k) = B^(i+k-1) * sum_j h_j B^-j, position-free, mod 2^64
                powers, inverse = (np.concatenate([np.ones(1, np.uint64), np.cumprod(np.full(n, base, np.uint64))[:-1]])
                                   for base in (_ROLL_BASE, _ROLL_INVERSE))
                self._rolling = (np.concatenate([np.zeros(1, np.uint64), np.cumsum(self.hashes * inverse)]), powers)
            prefix, powers = self._rolling
            start = np.flatnonzero(np.arange(n) + ngram <= self.offsets[1:][self.row])
            window = (prefix[start + ngram] - prefix[start]) * powers[start + ngram - 1]
            return splitmix64(window ^ np.uint64(ngram)), self.row[start], start

    def shingles(self, ngram: int, *, whole_if_shorter: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """64-bit hashes of every run of ``ngram`` consecutive words of each text, as ``(hashes, row, start)``: the
        text and first-word position (in `flat`) of each. A text shorter than ``ngram`` words gives one shingle of
        all its words when ``whole_if_shorter``, else none. A hash depends only on the words, so equal runs in
        different texts (or tables) hash equal."""
        n = len(self.flat)
        pos = np.arange(n)
        end_of = self.offsets[1:][self.row]
        shingle = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(ngram):
                part = np.where(pos + k < end_of, self.hashes[np.minimum(pos + k, max(n - 1, 0))], np.uint64(0))
                shingle = splitmix64(shingle * np.uint64(0x100000001B3) + part)
        valid = pos + ngram <= end_of
        if whole_if_shorter:
            start_of = self.offsets[:-1][self.row]
            valid |= (pos == start_of) & (end_of - start_of < ngram)
        return shingle[valid], self.row[valid], pos[valid]


def minhash_signatures(texts: pa.Array, *, num_perm: int = 64, ngram: int = 3, seed: int = 0) -> np.ndarray:
    """MinHash signatures (N x num_perm, uint32) over word ``ngram`` shingles; rows without words get all-ones."""
    n = len(texts)
    signatures = np.full((n, num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    if n == 0:
        return signatures
    rng = np.random.default_rng(0x5EED + seed)
    mult = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    add = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    shingle, rows, _ = Words(texts).shingles(ngram)
    if len(shingle) == 0:
        return signatures
    has = np.unique(rows)
    starts = np.searchsorted(rows, has)
    step = max(1, _BLOCK_VALUES // len(shingle))  # permutations per numpy pass: few texts need one pass, not num_perm
    with np.errstate(over="ignore"):
        for p in range(0, num_perm, step):
            permuted = ((shingle[:, None] * mult[None, p : p + step] + add[None, p : p + step]) >> np.uint64(32))
            signatures[has, p : p + step] = np.minimum.reduceat(permuted.astype(np.uint32), starts, axis=0)
    return signatures


def near_duplicates(
    table: pa.Table, threshold: float, *, rows: np.ndarray | None = None, num_perm: int = 64, ngram: int = 3,
    chunk_rows: int = 20_000, progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose prompt+replies have estimated Jaccard similarity >= ``threshold`` with another row.

    `similar_pairs` finds the pairs; confirmed pairs form clusters; in each cluster the row with the smallest id is
    kept (`keep_smallest_id`). Returns ``(dropped, kept_for_each_dropped)`` as positions in ``rows`` (default: all).
    """
    rows = np.arange(table.num_rows) if rows is None else np.asarray(rows, dtype=np.int64)
    a, b = similar_pairs(table, threshold, rows=rows, num_perm=num_perm, ngram=ngram, chunk_rows=chunk_rows,
                         progress=progress)
    if not len(a):
        return a, b
    return keep_smallest_id(a, b, pc.take(table.column("id"), pa.array(rows)))


def similar_pairs(
    table: pa.Table, threshold: float, *, rows: np.ndarray, num_perm: int = 64, ngram: int = 3,
    chunk_rows: int = 20_000, progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(a[i], b[i])`` of positions in ``rows`` whose MinHash signatures agree on >= ``threshold`` of places.

    LSH banding proposes candidates (no pairwise loop); a candidate is confirmed when the signatures agree on at least
    ``threshold`` of their positions. The table rows are taken chunk by chunk, so the table is never copied whole.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    n = len(rows)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty
    chunks = (table.take(pa.array(rows[start : start + chunk_rows])) for start in range(0, n, chunk_rows))
    if progress is not None:
        chunks = progress(chunks, total=-(-n // chunk_rows))
    signatures = np.concatenate([minhash_signatures(row_texts(c), num_perm=num_perm, ngram=ngram) for c in chunks])
    has_words = signatures[:, 0] != np.iinfo(np.uint32).max
    bands, width = lsh_params(threshold, num_perm)
    first, second = [], []
    keys = band_keys(signatures, bands, width)
    for band in range(bands):
        key = keys[:, band]
        candidates = np.flatnonzero(has_words)
        order = candidates[np.argsort(key[candidates], kind="stable")]
        sorted_key = key[order]
        same = np.flatnonzero(sorted_key[1:] == sorted_key[:-1]) + 1
        if not len(same):
            continue
        run_start = np.maximum.accumulate(
            np.where(np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]]), np.arange(len(order)), 0)
        )
        first.append(order[run_start[same]])
        second.append(order[same])
    if not first:
        return empty, empty
    edges = np.unique(np.concatenate(first).astype(np.int64) * n + np.concatenate(second))
    a, b = edges // n, edges % n
    agree = np.concatenate([(signatures[a[i : i + 200_000]] == signatures[b[i : i + 200_000]]).mean(axis=1) >= threshold
                            for i in range(0, len(a), 200_000)])
    return a[agree], b[agree]


def band_keys(signatures: np.ndarray, bands: int, width: int) -> np.ndarray:
    """LSH: one 64-bit key per row and band (N x bands) from ``width`` signature columns each; equal keys = a shared
    bucket."""
    blocks = signatures[:, : bands * width].astype(np.uint64).reshape(len(signatures), bands, width)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(width):
            keys = splitmix64(keys * np.uint64(0x100000001B3) + blocks[:, :, column])
    return keys


def keep_smallest_id(a: np.ndarray, b: np.ndarray, ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the pairs ``(a[i], b[i])`` (positions in ``ids``); in each cluster all but the smallest id are dropped.

    Returns ``(dropped, kept_for_each_dropped)``, dropped in ascending position. Clusters are scipy's connected
    components (it replaced a hand-written union-find: same decisions, faster; `bench/infra.py` part c).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    empty = np.zeros(0, dtype=np.int64)
    if not len(a):
        return empty, empty
    members, ends = np.unique(np.concatenate([a, b]), return_inverse=True)
    size = len(members)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (ends[: len(a)], ends[len(a) :])), shape=(size, size))
    _, cluster = connected_components(graph, directed=False)
    by_id = np.argsort(np.array(pc.take(ids, pa.array(members)).to_pylist()), kind="stable")
    first_in_id_order = np.unique(cluster[by_id], return_index=True)[1]
    keeper = np.empty(cluster.max() + 1, dtype=np.int64)
    keeper[cluster[by_id[first_in_id_order]]] = members[by_id[first_in_id_order]]
    kept = keeper[cluster]
    dropped = kept != members
    return members[dropped].astype(np.int64), kept[dropped]
