"""The data card: `DIR/README.md` with counts, length distributions and histograms of a prefdata directory.

Figures come from whole Arrow columns (no per-row Python except tokenisation). The share of pairs whose chosen reply is
longer than the rejected one is reported because reward models readily learn "longer is better" from such data.
A /1 directory is read as /2 (`storage.dataset.load`). Rows are counted per kind (`contract.row.row_kind`), unpaired
ones by label; a reply given as turns counts as the text of its messages (their contents, one per line), and the
card counts replies of several messages, tool messages and tool calls.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefdata.contract.errors import PrefdataError
from prefdata.contract.phases import phase_of_split
from prefdata.contract.row import PREFERENCE_SCHEMA_IDS
from prefdata.storage.dataset import load, read_manifest
from prefdata.storage.rows import reply_texts

CARD = "README.md"
_TOKEN_BATCH = 1024


def _lengths(column: pa.ChunkedArray) -> np.ndarray:
    """Characters per value; NaN where the value is null."""
    lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
    return np.asarray(lengths, dtype=np.float64)


def _valid(table: pa.Table, *names: str) -> np.ndarray:
    """Rows where any of the columns ``names`` is set."""
    return np.logical_or.reduce([pc.is_valid(table.column(n)).to_numpy(zero_copy_only=False) for n in names])


def kind_masks(table: pa.Table) -> dict[str, np.ndarray]:
    """`row_kind` of every row as one boolean mask per kind, from whole columns (a reply is text or turns)."""
    chosen, rejected = _valid(table, "chosen", "chosen_turns"), _valid(table, "rejected", "rejected_turns")
    unpaired = _valid(table, "label")
    one_reply = chosen & ~rejected & ~unpaired
    scored = one_reply & _valid(table, "chosen_score")
    return {"pair": chosen & rejected & ~unpaired, "demonstration": one_reply & ~scored, "scored": scored,
            "prompt_only": ~chosen & ~rejected & ~unpaired, "unpaired": unpaired}


def rows_serving(table: pa.Table) -> dict[str, int]:
    """Rows that have what each phase uses (`prefdata.contract.phases.serves`): what a trainer of that phase can read
    (an unpaired row serves ppo only; KTO's rm rows are counted as ``unpaired``)."""
    kinds = kind_masks(table)
    return {"sft": int((kinds["pair"] | kinds["demonstration"] | kinds["scored"]).sum()),
            "rm": int(kinds["pair"].sum()), "ppo": table.num_rows}


def _count_true(values: pa.ChunkedArray) -> int:
    """How many values are true (nulls are not)."""
    return int(pc.sum(pc.fill_null(values, False).cast(pa.int64())).as_py() or 0)


def tool_figures(table: pa.Table) -> dict[str, int]:
    """Replies of several messages, tool messages and tool calls (in prompts and replies) of one split."""
    multi = tool_messages = tool_calls = 0
    for name in ("prompt", "chosen_turns", "rejected_turns"):
        messages = table.column(name).combine_chunks()
        if name != "prompt":
            multi += int(pc.sum(pc.greater(pc.list_value_length(messages), 1)).as_py() or 0)
        values = messages.flatten()
        tool_messages += int(pc.sum(pc.equal(values.field("role"), "tool")).as_py() or 0)
        calls = pc.drop_null(values.field("tool_calls")).to_pylist()  # rare: parsed in Python
        tool_calls += sum(len(json.loads(text)) for text in calls)
    return {"multi_message_replies": multi, "tool_messages": tool_messages, "tool_calls": tool_calls}


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
                             "splits": {}, "tokenizer": str(tokenizer) if tokenizer else None,
                             "rankings": rankings_in(manifest, directory)}
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in ("turns", "prompt_chars", "chosen_chars", "rejected_chars",
                                                           "prompt_tokens", "chosen_tokens", "rejected_tokens")}
    for name in dataset_dict:
        table = dataset_dict[name].data.table
        turns, prompt_chars, prompt_texts = prompt_columns(table)
        chosen_texts, rejected_texts = reply_texts(table, "chosen"), reply_texts(table, "rejected")
        chosen_chars, rejected_chars = _lengths(chosen_texts), _lengths(rejected_texts)
        kinds = kind_masks(table)
        is_pair = kinds["pair"]
        label = table.column("label")
        split: dict[str, Any] = {
            "rows": table.num_rows,
            "sources": dict(sorted(Counter(table.column("source").to_pylist()).items())),
            "pairs": int(is_pair.sum()),
            "with_reply_only": int((kinds["demonstration"] | kinds["scored"]).sum()),
            "prompt_only": int(kinds["prompt_only"].sum()),
            "kinds": {kind: int(mask.sum()) for kind, mask in kinds.items()},
            "unpaired": {"desirable": _count_true(label), "undesirable": _count_true(pc.invert(label))},
            **tool_figures(table),
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
            tokens = {"prompt": _token_counts(count, prompt_texts), "chosen": _token_counts(count, chosen_texts),
                      "rejected": _token_counts(count, rejected_texts)}
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


def rankings_in(manifest: dict[str, Any], directory: str | os.PathLike) -> list[dict[str, Any]]:
    """How the rows were ranked: the `rank` block of a `prefdata rank` output, or the ones `split` carried over."""
    if isinstance(manifest.get("rank"), dict):
        return [{"input": str(directory), **manifest["rank"]}]
    return [r for r in manifest.get("rankings", []) if isinstance(r, dict)]


def _ranking_lines(rankings: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## Ranking", "", "| input | ranker | judges / model | prompts | answers | Fleiss' kappa "
             "| mean agreement |", "|---|---|---|---:|---:|---:|---:|"]
    for r in rankings:
        judges = r.get("judges") or r.get("model") or r.get("reward_model") or "–"
        judges = ", ".join(judges) if isinstance(judges, list) else str(judges)
        kappa, mean = r.get("fleiss_kappa"), r.get("mean_agreement")
        lines.append(f"| {r['input']} | {r.get('by', '–')} | {judges} | {r.get('prompts', '–')} | "
                     f"{r.get('answers', '–')} | {'–' if kappa is None else f'{kappa:.3f}'} "
                     f"| {'–' if mean is None else f'{mean:.3f}'} |")
    rules = sorted({r["agreement_rule"] for r in rankings if r.get("agreement_rule")})
    lines += ["", "Agreement is reported for a panel of judges only: " + "; ".join(rules) + "."] if rules else []
    return lines


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
              "length instead of quality (a known reward-hacking signal).", "", "## Rows per kind", "",
              "| split | pair | demonstration | scored | prompt only | unpaired (desirable / undesirable) "
              "| replies of several messages | tool messages | tool calls |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in stats["splits"].items():
        k, u = s["kinds"], s["unpaired"]
        lines.append(f"| {name} | {k['pair']:,} | {k['demonstration']:,} | {k['scored']:,} | {k['prompt_only']:,} "
                     f"| {k['unpaired']:,} ({u['desirable']:,} / {u['undesirable']:,}) "
                     f"| {s['multi_message_replies']:,} | {s['tool_messages']:,} | {s['tool_calls']:,} |")
    lines += ["", "An unpaired row is a reply labelled desirable or undesirable (KTO): it never serves sft.", "",
              "## Rows per source", "",
              "| split | source | rows |", "|---|---|---:|"]
    for name, s in stats["splits"].items():
        lines += [f"| {name} | {source} | {n:,} |" for source, n in s["sources"].items()]
    lines += ["", "## Quarantine", ""]
    if stats["quarantined_by_reason"]:
        lines += ["| reason | records |", "|---|---:|"]
        lines += [f"| {r} | {n:,} |" for r, n in stats["quarantined_by_reason"].items()]
    else:
        lines.append("No record was quarantined.")
    if stats["rankings"]:
        lines += _ranking_lines(stats["rankings"])
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
