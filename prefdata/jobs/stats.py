"""The data card: `DIR/README.md` with counts, length distributions and histograms of a prefdata directory.

Figures come from whole Arrow columns (no per-row Python except tokenisation). The share of pairs whose chosen reply is
longer than the rejected one is reported because reward models readily learn "longer is better" from such data.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import NEEDS, PHASES, phase_of_split
from prefdata.contract.row import PREFERENCE_SCHEMA_IDS
from prefdata.storage.dataset import load, read_manifest

CARD = "README.md"
_TOKEN_BATCH = 1024


def _lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Characters per value; NaN where the value is null."""
    lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
    return np.asarray(lengths, dtype=np.float64)


def rows_serving(table: pa.Table) -> dict[str, int]:
    """Rows that have what each phase uses (`prefdata.contract.phases.NEEDS`): what a trainer of that phase can read."""
    set_in = {field: pc.is_valid(table.column(field)).to_numpy(zero_copy_only=False)
              for field in {field for needs in NEEDS.values() for field in needs}}
    counts = {}
    for phase in PHASES:
        serving = np.ones(table.num_rows, dtype=bool)
        for field in NEEDS[phase]:
            serving &= set_in[field]
        counts[phase] = int(serving.sum())
    return counts


def prompt_columns(table: pa.Table) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Turns per prompt, characters per prompt, and the prompt texts (contents joined by newlines)."""
    prompt = table.column("prompt").combine_chunks()
    turns = pc.list_value_length(prompt).to_numpy(zero_copy_only=False).astype(np.int64)
    content = prompt.flatten().field("content")
    parents = pc.list_parent_indices(prompt).to_numpy(zero_copy_only=False)
    chars = np.bincount(parents, weights=pc.utf8_length(content).to_numpy(zero_copy_only=False), minlength=len(prompt))
    texts = pc.binary_join(pa.ListArray.from_arrays(prompt.offsets, prompt.values.field("content")), "\n")
    return turns, chars, texts


def describe(values: np.ndarray) -> dict[str, float] | None:
    values = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if not len(values):
        return None
    q = np.percentile(values, [50, 90, 99])
    return {"count": int(len(values)), "mean": round(float(values.mean()), 1), "p50": float(q[0]),
            "p90": float(q[1]), "p99": float(q[2]), "max": float(values.max())}


def load_tokenizer(path: str | os.PathLike):
    """A `tokenizers.Tokenizer` from `tokenizer.json` (no torch), else transformers' AutoTokenizer."""
    path = Path(path)
    if not path.exists():
        raise PrefdataError("no such tokenizer file or directory", file=str(path), field="tokenizer")
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.is_file() and file.suffix == ".json":
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(file))
        return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
    try:
        from transformers import AutoTokenizer

        auto = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:
        raise PrefdataError(f"cannot load a tokenizer: {e}", file=str(path), field="tokenizer") from None
    return lambda texts: [len(ids) for ids in auto(texts, add_special_tokens=False)["input_ids"]]


def _token_counts(count, texts: pa.Array) -> np.ndarray:
    out = np.full(len(texts), np.nan)
    valid = pc.is_valid(texts).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    values = pc.filter(texts, pa.array(valid)).to_pylist()
    for start in range(0, len(values), _TOKEN_BATCH):
        out[rows[start : start + _TOKEN_BATCH]] = count(values[start : start + _TOKEN_BATCH])
    return out


def dataset_stats(directory: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> dict[str, Any]:
    """All figures of the data card, as a dict (also the return value of `write_data_card`)."""
    manifest = read_manifest(directory)
    if manifest.get("schema") not in PREFERENCE_SCHEMA_IDS:
        raise PrefdataError(f"holds {manifest.get('schema')} rows; stats needs preference rows", file=str(directory))
    count = load_tokenizer(tokenizer) if tokenizer else None
    dataset_dict = load(directory)
    stats: dict[str, Any] = {"directory": str(directory), "command": manifest.get("command"),
                             "quarantined_by_reason": manifest.get("counts", {}).get("quarantined_by_reason", {}),
                             "splits": {}, "tokenizer": str(tokenizer) if tokenizer else None}
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("turns", "prompt_chars", "chosen_chars", "rejected_chars",
                                                           "prompt_tokens", "chosen_tokens", "rejected_tokens")}
    for name in dataset_dict:
        table = dataset_dict[name].data.table
        turns, prompt_chars, prompt_texts = prompt_columns(table)
        chosen_chars, rejected_chars = _lengths(table.column("chosen")), _lengths(table.column("rejected"))
        is_pair = ~np.isnan(chosen_chars) & ~np.isnan(rejected_chars)
        split: dict[str, Any] = {
            "rows": table.num_rows,
            "sources": dict(sorted(Counter(table.column("source").to_pylist()).items())),
            "pairs": int(is_pair.sum()),
            "with_reply_only": int((~np.isnan(chosen_chars) & np.isnan(rejected_chars)).sum()),
            "prompt_only": int(np.isnan(chosen_chars).sum()),
            "phase": phase_of_split(name),  # None unless `prefdata split` wrote it
            "rows_serving": rows_serving(table),
            "turns": describe(turns.astype(np.float64)),
            "chars": {"prompt": describe(prompt_chars), "chosen": describe(chosen_chars),
                      "rejected": describe(rejected_chars)},
            "chosen_longer_share": round(float((chosen_chars[is_pair] > rejected_chars[is_pair]).mean()), 4)
            if is_pair.any() else None,
        }
        pooled["turns"].append(turns)
        pooled["prompt_chars"].append(prompt_chars)
        pooled["chosen_chars"].append(chosen_chars)
        pooled["rejected_chars"].append(rejected_chars)
        if count is not None:
            tokens = {"prompt": _token_counts(count, prompt_texts),
                      "chosen": _token_counts(count, table.column("chosen").combine_chunks()),
                      "rejected": _token_counts(count, table.column("rejected").combine_chunks())}
            split["tokens"] = {k: describe(v) for k, v in tokens.items()}
            split["chosen_longer_share_tokens"] = round(
                float((tokens["chosen"][is_pair] > tokens["rejected"][is_pair]).mean()), 4) if is_pair.any() else None
            for k, v in tokens.items():
                pooled[f"{k}_tokens"].append(v)
        stats["splits"][name] = split
    stats["_pooled"] = {k: np.concatenate(v) if v else np.zeros(0) for k, v in pooled.items()}
    return stats


def _atomic_bytes(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _histogram(path: Path, series: dict[str, np.ndarray], title: str, xlabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    for label, values in series.items():
        values = values[~np.isnan(values)]
        if len(values):
            upper = max(float(np.percentile(values, 99)), 1.0)
            ax.hist(np.clip(values, 0, upper), bins=50, range=(0, upper), alpha=0.55, label=label)
    ax.set_title(f"{title} (values above p99 in the last bin)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)


def _fmt(d: dict[str, float] | None) -> str:
    if d is None:
        return "– | – | – | – | –"
    return f"{d['mean']:,.1f} | {d['p50']:,.0f} | {d['p90']:,.0f} | {d['p99']:,.0f} | {d['max']:,.0f}"


def render_card(stats: dict[str, Any], images: dict[str, str]) -> str:
    lines = [f"# Data card: {Path(stats['directory']).name}", "",
             f"Written by `prefdata stats` from `{stats['directory']}` (made by `prefdata {stats['command']}`).", "",
             "## Rows per split", "", "| split | rows | pairs | one reply | prompt only | chosen longer than rejected |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, s in stats["splits"].items():
        share = "–" if s["chosen_longer_share"] is None else f"{100 * s['chosen_longer_share']:.1f}%"
        lines.append(f"| {name} | {s['rows']:,} | {s['pairs']:,} | {s['with_reply_only']:,} | {s['prompt_only']:,} | {share} |")
    lines += ["", "A high share of pairs whose chosen reply is longer than the rejected one lets a reward model learn "
              "length instead of quality (a known reward-hacking signal).", "", "## Rows per source", "",
              "| split | source | rows |", "|---|---|---:|"]
    for name, s in stats["splits"].items():
        lines += [f"| {name} | {source} | {n:,} |" for source, n in s["sources"].items()]
    lines += ["", "## Quarantine", ""]
    if stats["quarantined_by_reason"]:
        lines += ["| reason | records |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in stats["quarantined_by_reason"].items()]
    else:
        lines.append("No record was quarantined.")
    lines += ["", "## Turns per prompt", "", "| split | mean | p50 | p90 | p99 | max |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {name} | {_fmt(s['turns'])} |" for name, s in stats["splits"].items()]
    for unit in ("chars", "tokens"):
        if not any(unit in s for s in stats["splits"].values()):
            continue
        label = "characters" if unit == "chars" else f"tokens ({stats['tokenizer']})"
        lines += ["", f"## Lengths in {label}", "", "| split | field | mean | p50 | p90 | p99 | max |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for name, s in stats["splits"].items():
            lines += [f"| {name} | {field} | {_fmt(d)} |" for field, d in s[unit].items()]
    lines += ["", "## Histograms", ""] + [f"![{title}]({file})" for title, file in images.items()]
    return "\n".join(lines) + "\n"


def write_data_card(directory: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> dict[str, Any]:
    """Compute the figures, write the PNG histograms and `README.md` into ``directory`` (each file atomically)."""
    stats = dataset_stats(directory, tokenizer)
    pooled = stats.pop("_pooled")
    directory = Path(directory)
    images = {"Turns per prompt": "stats_turns.png", "Lengths in characters": "stats_chars.png"}
    _atomic_bytes(directory / images["Turns per prompt"], lambda p: _histogram(
        p, {"turns": pooled["turns"].astype(np.float64)}, "Turns per prompt", "messages"))
    _atomic_bytes(directory / images["Lengths in characters"], lambda p: _histogram(
        p, {k: pooled[f"{k}_chars"] for k in ("prompt", "chosen", "rejected")}, "Lengths", "characters"))
    if tokenizer:
        images["Lengths in tokens"] = "stats_tokens.png"
        _atomic_bytes(directory / images["Lengths in tokens"], lambda p: _histogram(
            p, {k: pooled[f"{k}_tokens"] for k in ("prompt", "chosen", "rejected")}, "Lengths", "tokens"))
    card = render_card(stats, images)
    _atomic_bytes(directory / CARD, lambda p: p.write_text(card, encoding="utf-8"))
    stats["card"] = str(directory / CARD)
    stats["images"] = [str(directory / f) for f in images.values()]
    return stats


def terminal_table(stats: dict[str, Any]) -> str:
    """A short table for the terminal: rows, pairs, median lengths, chosen-longer share per split."""
    header = f"{'split':<12} {'rows':>9} {'pairs':>9} {'p50 prompt':>10} {'p50 chosen':>10} {'chosen>rej':>10}"
    lines = [header, "-" * len(header)]
    for name, s in stats["splits"].items():
        prompt = s["chars"]["prompt"]["p50"] if s["chars"]["prompt"] else float("nan")
        chosen = s["chars"]["chosen"]["p50"] if s["chars"]["chosen"] else float("nan")
        share = "–" if s["chosen_longer_share"] is None else f"{100 * s['chosen_longer_share']:.1f}%"
        lines.append(f"{name:<12} {s['rows']:>9,} {s['pairs']:>9,} {prompt:>10,.0f} {chosen:>10,.0f} {share:>10}")
    return "\n".join(lines)
