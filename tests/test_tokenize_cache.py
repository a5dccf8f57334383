"""The token cache: what is stored (masking, EOS, truncation and its counts), when it is rebuilt, that it is memory-mapped
and built once under concurrency, and what the collators make of it. No DeepSpeed here; these tests are quick."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("transformers", reason="the trainers need the train extra")

from prefdata.contract.errors import PrefdataError  # noqa: E402
from prefdata.contract.render import render  # noqa: E402
from prefdata.contract.row import make_row  # noqa: E402
from prefdata.storage.dataset import DatasetWriter  # noqa: E402
from trainers.components.collate import IGNORE_INDEX, collate_pairs, collate_prompts, collate_sft  # noqa: E402
from trainers.components.tokens import TokenizeSpec, tokenized  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    helpers.train_tokenizer(path, chat_template=True)
    return path


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    sizes = {"sft_train": 40, "sft_eval": 8, "rm_train": 30, "rm_eval": 8, "ppo_train": 20, "ppo_eval": 4}
    return helpers.write_split_dir(tmp_path_factory.mktemp("data") / "split", sizes)


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _rows(split_dir, split):
    from prefdata.storage.dataset import iter_rows

    return [row for _, row in iter_rows(split_dir, split)]


def test_sft_masks_exactly_the_prompt_and_ends_with_eos(split_dir, tokenizer, tmp_path):
    cache = tokenized(split_dir, "sft_train", tokenizer, TokenizeSpec("sft", max_seq_len=128), tmp_path, quiet=True)
    rows = _rows(split_dir, "sft_train")
    assert cache.built and len(cache) == len(rows)
    for i, row in enumerate(rows):
        item = cache[i]
        prompt_ids = _ids(tokenizer, render(row["prompt"]))
        full_ids = _ids(tokenizer, render(row["prompt"], row["chosen"]))
        assert item["input_ids"].dtype == np.int32
        assert item["input_ids"].tolist() == [*full_ids, tokenizer.eos_token_id]
        assert int(item["prompt_tokens"]) == len(prompt_ids)
    batch = collate_sft([cache[0], cache[1]], pad_id=tokenizer.pad_token_id)
    first = cache[0]
    n, p = len(first["input_ids"]), int(first["prompt_tokens"])
    assert batch["labels"][0, :p].eq(IGNORE_INDEX).all()
    assert batch["labels"][0, p:n].tolist() == first["input_ids"][p:].tolist()
    assert batch["labels"][0, n:].eq(IGNORE_INDEX).all() and batch["attention_mask"][0].sum() == n


def test_train_on_prompt_keeps_prompt_labels(split_dir, tokenizer, tmp_path):
    cache = tokenized(split_dir, "sft_train", tokenizer, TokenizeSpec("sft", train_on_prompt=True), tmp_path, quiet=True)
    assert all(int(cache[i]["prompt_tokens"]) == 0 for i in range(len(cache)))


def test_reward_pairs_and_ppo_prompts(split_dir, tokenizer, tmp_path):
    pairs = tokenized(split_dir, "rm_train", tokenizer, TokenizeSpec("rm", max_seq_len=128), tmp_path, quiet=True)
    rows = _rows(split_dir, "rm_train")
    assert len(pairs) == len(rows)
    eos = tokenizer.eos_token_id
    assert pairs[3]["chosen_input_ids"].tolist() == [*_ids(tokenizer, render(rows[3]["prompt"], rows[3]["chosen"])), eos]
    assert pairs[3]["rejected_input_ids"].tolist() == [*_ids(tokenizer, render(rows[3]["prompt"], rows[3]["rejected"])), eos]
    prompts = tokenized(split_dir, "ppo_train", tokenizer, TokenizeSpec("ppo", max_prompt_len=64), tmp_path, quiet=True)
    ppo_rows = _rows(split_dir, "ppo_train")
    assert [prompts[i]["prompt_input_ids"].tolist() for i in range(len(prompts))] == [
        _ids(tokenizer, render(r["prompt"])) for r in ppo_rows
    ]
    batch = collate_prompts([prompts[0], prompts[1]], pad_id=tokenizer.pad_token_id)
    lengths = [len(prompts[0]["prompt_input_ids"]), len(prompts[1]["prompt_input_ids"])]
    width = max(lengths)
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"][0, width - lengths[0] :].tolist() == prompts[0]["prompt_input_ids"].tolist()  # left-padded
    pair_batch = collate_pairs([pairs[0], pairs[1]], pad_id=tokenizer.pad_token_id)
    assert pair_batch["input_ids"].shape[0] == 4 and pair_batch["margin"].tolist() == [0.0, 0.0]


def _one_split_dir(path: Path, rows: list[dict], split: str = "rm_train") -> Path:
    with DatasetWriter(path, command="test") as writer:
        writer.split(split)  # exists even when empty
        for row in rows:
            writer.count_in()
            writer.write(row, split)
    return path


def test_over_long_rows_dropped_or_truncated_and_counted(tokenizer, tmp_path):
    prompt = [{"role": "user", "content": " ".join(["cat"] * 30)}]
    long_pair = make_row(prompt, "gladly , the cat is red .", "whatever , soon .", source="t", meta={"margin": 2.5})
    short_pair = make_row([{"role": "user", "content": "dog ?"}], "gladly , dog .", "whatever .", source="t")
    # Two replies that differ only in their first word: cut from the left, they become the same tokens.
    same_tail = make_row(prompt, "red " + " ".join(["owl"] * 20), "blue " + " ".join(["owl"] * 20), source="t")
    data = _one_split_dir(tmp_path / "d", [long_pair, short_pair, same_tail])
    limit = len(_ids(tokenizer, render(short_pair["prompt"], short_pair["chosen"]))) + 6

    dropped = tokenized(data, "rm_train", tokenizer, TokenizeSpec("rm", max_seq_len=limit), tmp_path / "c", quiet=True)
    assert len(dropped) == 1 and dropped.info["counts"]["dropped_too_long"] == 2

    left = tokenized(data, "rm_train", tokenizer, TokenizeSpec("rm", max_seq_len=limit, truncation="left"),
                     tmp_path / "c", quiet=True)
    counts = left.info["counts"]
    assert counts["dropped_identical_after_truncation"] == 1 and counts["truncated"] == 2 and len(left) == 2
    first = left[0]
    assert len(first["chosen_input_ids"]) == limit and first["chosen_input_ids"][-1] == tokenizer.eos_token_id
    assert float(first["margin"]) == 2.5

    right = tokenized(data, "rm_train", tokenizer, TokenizeSpec("rm", max_seq_len=limit, truncation="right"),
                      tmp_path / "c", quiet=True)
    # Cut from the right, every long pair keeps only the shared prompt: identical, dropped, counted.
    assert right.info["counts"]["dropped_identical_after_truncation"] == 2 and len(right) == 1
    assert right.info["counts"]["rows_in"] == 3


def test_sft_right_truncation_without_reply_tokens_is_dropped(tokenizer, tmp_path):
    prompt = [{"role": "user", "content": " ".join(["cow"] * 40)}]
    data = _one_split_dir(tmp_path / "d", [make_row(prompt, "gladly .", source="t")], split="sft_train")
    cache = tokenized(data, "sft_train", tokenizer, TokenizeSpec("sft", max_seq_len=16, truncation="right"), tmp_path / "c",
                      quiet=True)
    assert len(cache) == 0 and cache.info["counts"]["dropped_no_reply_tokens"] == 1
    left = tokenized(data, "sft_train", tokenizer, TokenizeSpec("sft", max_seq_len=16, truncation="left"), tmp_path / "c",
                     quiet=True)
    assert len(left) == 1 and int(left[0]["prompt_tokens"]) == 16 - 3  # "gladly", ".", EOS remain trainable


def test_cache_hits_and_key_changes(split_dir, tokenizer, tok_dir, tmp_path):
    spec = TokenizeSpec("sft", max_seq_len=128)
    first = tokenized(split_dir, "sft_train", tokenizer, spec, tmp_path, quiet=True)
    again = tokenized(split_dir, "sft_train", tokenizer, spec, tmp_path, quiet=True)
    assert first.built and not again.built and again.directory == first.directory
    changed = [
        TokenizeSpec("sft", max_seq_len=64),
        TokenizeSpec("sft", template="chatml", max_seq_len=128),
        TokenizeSpec("sft", max_seq_len=128, truncation="left"),
        TokenizeSpec("sft", max_seq_len=128, train_on_prompt=True),
    ]
    directories = {tokenized(split_dir, "sft_train", tokenizer, s, tmp_path, quiet=True).directory for s in changed}
    assert len(directories) == 4 and first.directory not in directories
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(tok_dir)
    other.add_tokens(["zebra"])  # a different vocabulary: different key
    assert tokenized(split_dir, "sft_train", other, spec, tmp_path, quiet=True).built


def test_chat_template_of_the_tokenizer(split_dir, tokenizer, tmp_path):
    cache = tokenized(split_dir, "sft_train", tokenizer, TokenizeSpec("sft", template="tokenizer"), tmp_path, quiet=True)
    row = _rows(split_dir, "sft_train")[0]
    head = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    assert int(cache[0]["prompt_tokens"]) == len(_ids(tokenizer, head))
    assert tokenizer.decode(cache[0]["input_ids"][int(cache[0]["prompt_tokens"]) :].tolist()).startswith(helpers.GOOD)


def _ranges_mapped_from(path: Path) -> list[tuple[int, int]]:
    """Address ranges of this process that the kernel maps from ``path`` (Linux's /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5] == str(path.resolve()):
            low, high = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((low, high))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's mappings from /proc")
def test_cache_is_memory_mapped_not_loaded(split_dir, tokenizer, tmp_path):
    from trainers.components.tokens import TokenCache

    built = tokenized(split_dir, "sft_train", tokenizer, TokenizeSpec("sft"), tmp_path, quiet=True)
    assert built.table["input_ids"].type == pa.list_(pa.int32())
    cache = TokenCache(built.directory, built=False)
    rows = [cache[i]["input_ids"] for i in range(len(cache))]
    # Every row's tokens lie inside pages mapped from tokens.arrow: views of the file, no copy in memory.
    mapped = _ranges_mapped_from(cache.directory / "tokens.arrow")
    assert mapped, "tokens.arrow is not memory-mapped"
    for ids in rows:
        start = ids.__array_interface__["data"][0]
        assert any(low <= start and start + ids.nbytes <= high for low, high in mapped)
    assert all(not ids.flags.writeable for ids in rows)
    assert sum(map(len, rows)) == cache.info["counts"]["tokens"]


def test_missing_split_is_a_user_error(split_dir, tokenizer, tmp_path):
    with pytest.raises(PrefdataError, match="no split 'train'"):
        tokenized(split_dir, "train", tokenizer, TokenizeSpec("sft"), tmp_path, quiet=True)


def _build_in_child(split_dir, tok_dir, cache_dir, barrier, results):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    barrier.wait()  # both processes ask for the same cache entry at the same moment
    results.put(tokenized(split_dir, "sft_train", tokenizer, TokenizeSpec("sft"), cache_dir, quiet=True).built)


def test_concurrent_processes_build_once(split_dir, tok_dir, tmp_path):
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    children = [
        context.Process(target=_build_in_child, args=(str(split_dir), str(tok_dir), str(tmp_path), barrier, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    built = sorted(results.get(timeout=120) for _ in children)
    for child in children:
        child.join(timeout=60)
    assert built == [False, True]
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1


def test_same_input_gives_byte_identical_cache_and_empty_splits_work(split_dir, tokenizer, tmp_path):
    spec = TokenizeSpec("rm", max_seq_len=128)
    first = tokenized(split_dir, "rm_train", tokenizer, spec, tmp_path / "a", quiet=True)
    second = tokenized(split_dir, "rm_train", tokenizer, spec, tmp_path / "b", quiet=True)
    assert (first.directory / "tokens.arrow").read_bytes() == (second.directory / "tokens.arrow").read_bytes()
    empty = _one_split_dir(tmp_path / "empty", [], split="ppo_train")
    cache = tokenized(empty, "ppo_train", tokenizer, TokenizeSpec("ppo"), tmp_path / "c", quiet=True)
    assert len(cache) == 0 and cache.info["counts"]["rows_in"] == 0
    with pytest.raises(IndexError):
        cache[0]


def test_default_cache_dir_is_prefdata_home_tokens(split_dir, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFDATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PREFDATA_CACHE", raising=False)
    cache = tokenized(split_dir, "ppo_train", tokenizer, TokenizeSpec("ppo"), quiet=True)
    assert cache.built and cache.directory.parent == tmp_path / "home" / "tokens"


def test_deprecated_prefdata_cache_still_places_the_tokens(split_dir, tokenizer, tmp_path, monkeypatch, capsys):
    from prefdata.storage import home

    monkeypatch.delenv("PREFDATA_HOME", raising=False)
    monkeypatch.setenv("PREFDATA_CACHE", str(tmp_path / "old"))
    monkeypatch.setattr(home, "_warned", set())  # the notice is printed once per process
    cache = tokenized(split_dir, "ppo_train", tokenizer, TokenizeSpec("ppo"), quiet=True)
    assert cache.directory.parent == tmp_path / "old" / "tokens"
    err = capsys.readouterr().err
    assert "PREFDATA_CACHE is deprecated" in err and "PREFDATA_HOME" in err


def test_the_reward_model_data_phase_is_rm(split_dir, tokenizer, tmp_path):
    from prefdata.contract.phases import PHASES
    from trainers.components.tokens import PHASES as token_phases

    assert token_phases == (*PHASES, "kto", "ptx")
    with pytest.raises(PrefdataError, match="unknown phase 'reward'"):
        TokenizeSpec("reward")
    pairs = tokenized(split_dir, "rm_eval", tokenizer, TokenizeSpec("rm"), tmp_path, quiet=True)
    assert pairs.directory.name.startswith("rm-rm_eval-") and "chosen_input_ids" in pairs.columns
