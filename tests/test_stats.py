"""The data card: figures computed independently here, PNGs written and referenced, tokenizer lengths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from split_helpers import demo, hh_rows, prompt_only, write_dataset

from prefdata.cli import main
from prefdata.jobs.stats import dataset_stats, write_data_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def hh_dir(tmp_path_factory, hh_harmless_test) -> tuple[Path, list[dict]]:
    rows = hh_rows(hh_harmless_test)
    extra = [demo(i) for i in range(7)] + [prompt_only(i) for i in range(4)]
    directory = write_dataset(tmp_path_factory.mktemp("stats") / "hh", {"test": rows, "extra": extra})
    return directory, rows


def whitespace_tokenizer(path: Path, texts: list[str]) -> Path:
    """A word-level tokenizer of our own (no download): every word and punctuation run is one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path.mkdir()
    tokenizer.save(str(path / "tokenizer.json"))
    return path


def test_card_figures_match_an_independent_count(hh_dir):
    directory, rows = hh_dir
    stats = dataset_stats(directory)
    test = stats["splits"]["test"]
    assert test["rows"] == len(rows) and test["pairs"] == len(rows)
    longer = sum(len(r["chosen"]) > len(r["rejected"]) for r in rows) / len(rows)
    assert test["chosen_longer_share"] == pytest.approx(longer, abs=1e-4)
    turns = sorted(len(r["prompt"]) for r in rows)
    assert test["turns"]["max"] == turns[-1]
    prompt_chars = [sum(len(m["content"]) for m in r["prompt"]) for r in rows]
    assert test["chars"]["prompt"]["max"] == max(prompt_chars)
    assert test["chars"]["prompt"]["mean"] == pytest.approx(sum(prompt_chars) / len(rows), abs=0.05)
    extra = stats["splits"]["extra"]
    assert (extra["with_reply_only"], extra["prompt_only"], extra["pairs"]) == (7, 4, 0)
    assert extra["chosen_longer_share"] is None


def test_card_and_histograms_are_written_and_referenced(hh_dir, capsys):
    directory, rows = hh_dir
    main(["stats", str(directory)])
    card = (directory / "README.md").read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert "test" in out and f"{len(rows):,}" in out
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)
    assert len(images) == 2
    for image in images:
        assert (directory / image).read_bytes().startswith(PNG_MAGIC)
    for section in ("Rows per split", "Rows per source", "Quarantine", "Turns per prompt", "Lengths in characters"):
        assert f"## {section}" in card
    assert "hh-rlhf/harmless-base" in card
    assert not list(directory.glob(".*tmp*"))


def test_token_lengths_with_a_local_tokenizer(hh_dir, tmp_path):
    directory, rows = hh_dir
    texts = [r["chosen"] for r in rows] + [r["rejected"] for r in rows] + [m["content"] for r in rows for m in r["prompt"]]
    tokenizer = whitespace_tokenizer(tmp_path / "tok", texts)
    stats = write_data_card(directory, tokenizer=tokenizer)
    counted = [len(re.findall(r"\w+|[^\w\s]+", r["chosen"])) for r in rows]
    assert stats["splits"]["test"]["tokens"]["chosen"]["max"] == max(counted)
    assert stats["splits"]["test"]["tokens"]["chosen"]["mean"] == pytest.approx(sum(counted) / len(counted), abs=0.05)
    assert "## Lengths in tokens" in (directory / "README.md").read_text(encoding="utf-8")
    assert (directory / "stats_tokens.png").read_bytes().startswith(PNG_MAGIC)


def test_missing_tokenizer_is_a_one_line_error(hh_dir, tmp_path, capsys):
    directory, _ = hh_dir
    with pytest.raises(SystemExit) as exit_info:
        main(["stats", str(directory), "--tokenizer", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("prefdata: error:")
