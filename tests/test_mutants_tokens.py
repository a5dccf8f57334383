"""Tests that kill mutants of `trainers/components/tokens.py` the suite let survive (issue #15): the pure parts
(spec checks, cache keys, the over-length policy, tokenising each phase, opening an entry) driven by a character-level
tokenizer built here, so every expected id list is the test's own text, one id per character.

Equivalent survivors (one line each):
- `cache_key` with a material key renamed ("XXshardsXX"): every key changes alike; no two settings come to share one.
- `_tokenize_batch` calling `encode_replies` without ``prompt_ids``: the prompts are encoded again, to the same ids.
- `open_verified` reading / `tokenized` writing info.json with no or another spelling of UTF-8: json.dumps writes ASCII.
- `tokenized` making the temporary entry with ``parents=None``: `cache_root` has already made its parent.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.render import render
from prefdata.contract.row import UNSUP_SCHEMA_ID, make_row
from trainers.components import token_store, tokens
from trainers.components.tokens import TokenizeSpec

BOS, EOS = 1, 2
ASK = [{"role": "user", "content": "hi"}]


class CharTokenizer:
    """One id per character (its code point); BOS first when ``add_special_tokens`` and the tokenizer has one.
    ``save_pretrained`` writes a config (with ``config``) and a chat template, as a transformers tokenizer does."""

    def __init__(self, bos: int | None = BOS, eos: int | None = EOS, prepends_bos: bool = True,
                 config: dict | None = None, chat_template: str = "{{ messages }}") -> None:
        self.bos_token_id, self.eos_token_id, self.prepends_bos = bos, eos, prepends_bos
        self.config, self.chat_template = config or {"chat_template": chat_template}, chat_template

    def save_pretrained(self, directory: str) -> None:
        Path(directory, "tokenizer_config.json").write_text(json.dumps(self.config), encoding="utf-8")
        Path(directory, "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")

    def __call__(self, text, add_special_tokens: bool = True) -> dict:
        def one(t: str) -> list[int]:
            head = [self.bos_token_id] if add_special_tokens and self.prepends_bos and self.bos_token_id else []
            return head + [ord(c) for c in t]

        return {"input_ids": one(text) if isinstance(text, str) else [one(t) for t in text]}


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def encoder(phase: str, tokenizer: CharTokenizer | None = None, **spec) -> tokens._Encoder:
    return tokens._Encoder(tokenizer or CharTokenizer(), TokenizeSpec(phase, **spec))


# ------------------------------------------------------------------------------------------------------- spec, key


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"phase": "reward"}, "unknown phase 'reward'; choose one of sft, rm, ppo, kto, ptx"),
    ({"phase": "sft", "template": "alpaca"}, "unknown template 'alpaca'; choose one of dschat, chatml, tokenizer"),
    ({"phase": "sft", "truncation": "middle"}, "unknown truncation 'middle'; choose one of drop, left, right"),
    ({"phase": "sft", "max_seq_len": 1}, "max lengths must be positive"),
    ({"phase": "sft", "max_prompt_len": 0}, "max lengths must be positive"),
])
def test_spec_refuses_what_it_cannot_tokenise(kwargs, message):
    with pytest.raises(PrefdataError) as refused:
        TokenizeSpec(**kwargs)
    assert refused.value.message.startswith(message)


def test_spec_accepts_the_smallest_lengths():
    assert TokenizeSpec("sft", max_seq_len=2, max_prompt_len=1).max_seq_len == 2


def test_cache_key_holds_only_the_settings_that_change_a_phases_tokens():
    def key(spec: TokenizeSpec, shards=("a",), tok="t") -> str:
        return tokens.cache_key(list(shards), tok, spec)

    base = key(TokenizeSpec("sft"))
    assert len(base) == 24 and int(base, 16) >= 0
    assert key(TokenizeSpec("sft", max_prompt_len=9)) == base  # sft ignores the prompt limit
    assert key(TokenizeSpec("sft", train_on_prompt=True)) != base
    assert key(TokenizeSpec("sft"), shards=("b",)) != base and key(TokenizeSpec("sft"), tok="u") != base
    assert key(TokenizeSpec("ppo", max_prompt_len=9)) != key(TokenizeSpec("ppo"))
    assert key(TokenizeSpec("rm", train_on_prompt=True)) == key(TokenizeSpec("rm"))


def test_fingerprint_ignores_the_chat_template_unless_it_renders_the_text():
    def fingerprint(template: str, **tokenizer) -> str:
        return tokens.tokenizer_fingerprint(CharTokenizer(**tokenizer), template)

    plain = {"config": {"chat_template": "A", "model_max_length": 8}, "chat_template": "A"}
    other_template = {"config": {"chat_template": "B", "model_max_length": 8}, "chat_template": "B"}
    other_config = {"config": {"chat_template": "A", "model_max_length": 9}, "chat_template": "A"}
    assert fingerprint("dschat", **plain) == fingerprint("dschat", **other_template)
    assert fingerprint("dschat", **plain) != fingerprint("dschat", **other_config)
    assert fingerprint("tokenizer", **plain) != fingerprint("tokenizer", **other_template)
    assert re.fullmatch("[0-9a-f]{64}", fingerprint("chatml", **plain))


def test_chat_template_files():
    assert tokens._is_chat_template("chat_template.jinja") and tokens._is_chat_template("chat_template.json")
    assert tokens._is_chat_template("additional_chat_templates/tool.jinja")
    assert not tokens._is_chat_template("tokenizer_config.json")


# ---------------------------------------------------------------------------------------------------- tokenising


def test_fit_keeps_drops_or_cuts_by_hand():
    ids = [10, 11, 12, 13, 14]
    assert tokens._fit(ids, 2, 5, "drop") == (ids, 2)  # exactly the limit: kept
    assert tokens._fit(ids, 2, 4, "drop") is None
    assert tokens._fit(ids, 3, 3, "left") == ([12, 13, 14], 1)  # two cut from the prompt's start
    assert tokens._fit(ids, 1, 3, "left") == ([12, 13, 14], 0)  # the whole prompt cut
    assert tokens._fit(ids, 4, 3, "right") == ([10, 11, 12], 3)
    assert tokens._fit(ids, 2, 3, "right") == ([10, 11, 12], 2)


def test_labelled_replies_of_each_kind_of_row():
    assert tokens.labelled_replies(make_row(ASK, "yes", label=True, source="t")) == [("chosen", True)]
    assert tokens.labelled_replies(make_row(ASK, None, "no", label=False, source="t")) == [("rejected", False)]
    assert tokens.labelled_replies(make_row(ASK, "yes", "no", source="t")) == [("chosen", True), ("rejected", False)]
    assert tokens.labelled_replies(make_row(ASK, source="t")) == []


def test_encoder_needs_eos_and_adds_bos_only_where_the_tokenizer_would():
    with pytest.raises(PrefdataError, match="the tokenizer has no EOS token"):
        encoder("sft", CharTokenizer(eos=None))
    assert encoder("sft").bos == BOS and encoder("sft").eos == EOS
    assert encoder("sft", CharTokenizer(prepends_bos=False)).bos is None  # a BOS token it never puts first
    assert encoder("sft", CharTokenizer(bos=None)).bos is None
    enc = encoder("sft")
    assert enc.encode(["ab", ""]) == [[BOS, *chars("ab")], [BOS]]
    assert enc.encode(["ab"], bos=False) == [chars("ab")]
    assert encoder("sft", CharTokenizer(prepends_bos=False)).encode(["ab"]) == [chars("ab")]


def test_encode_goes_straight_through_a_rust_backend_when_there_is_one():
    class Backend:
        def encode_batch_fast(self, texts, add_special_tokens):
            assert add_special_tokens is False
            return [SimpleNamespace(ids=[len(t)]) for t in texts]  # the text's length: not what __call__ gives

    tokenizer = CharTokenizer(bos=None)
    tokenizer.backend_tokenizer = Backend()
    assert encoder("sft", tokenizer).encode(["abc", "de"]) == [[3], [2]]


def test_encode_replies_joins_prompt_and_reply_and_ends_with_one_eos():
    enc = encoder("sft", CharTokenizer(bos=None))
    assert enc.encode_replies(["P:"], ["P: ok"]) == [([*chars("P:"), *chars(" ok"), EOS], 2)]
    eos_char = chr(EOS)  # a reply whose last token is already EOS gets no second one
    assert enc.encode_replies(["P:"], ["P: ok" + eos_char]) == [([*chars("P: ok"), EOS], 2)]
    assert enc.encode_replies(["P:"], ["P:"], prompt_ids=[[7]]) == [([7, EOS], 1)]


def _batch(phase: str, rows: list[dict], **spec) -> tuple[dict, Counter]:
    """One batch of ``rows`` through `_tokenize_batch` with a tokenizer without BOS; the counts that are not 0."""
    counts: Counter = Counter()
    columns = tokens._tokenize_batch(rows, encoder(phase, CharTokenizer(bos=None), **spec), counts)
    return columns, +counts


def test_sft_columns_and_counts_by_hand():
    prompt = render(ASK)
    pair, unpaired = make_row(ASK, "yes", "no", source="t"), make_row(ASK, "yes", label=True, source="t")
    columns, counts = _batch("sft", [pair, unpaired], max_seq_len=64)
    assert columns == {"input_ids": [[*chars(render(ASK, "yes")), EOS]], "prompt_tokens": [len(prompt)]}
    assert counts == {"not_for_phase": 1}
    on_prompt, _ = _batch("sft", [pair], max_seq_len=64, train_on_prompt=True)
    assert on_prompt["prompt_tokens"] == [0]
    cut, counts = _batch("sft", [pair], max_seq_len=len(prompt) + 2, truncation="left")
    assert cut["input_ids"] == [[*chars(render(ASK, "yes"))[-(len(prompt) + 1):], EOS]] and counts["truncated"] == 1
    none_left, counts = _batch("sft", [pair], max_seq_len=len(prompt), truncation="right")
    assert none_left == {"input_ids": [], "prompt_tokens": []}
    assert counts == {"truncated": 1, "dropped_no_reply_tokens": 1}
    dropped, counts = _batch("sft", [pair], max_seq_len=len(prompt))
    assert dropped["input_ids"] == [] and counts == {"dropped_too_long": 1}


def test_rm_columns_by_hand():
    prompt = render(ASK)
    pair = make_row(ASK, "yes", "no", source="t", meta={"margin": 2.5})
    columns, counts = _batch("rm", [pair, make_row(ASK, "ok", "nah", source="t")], max_seq_len=64)
    assert columns["chosen_input_ids"] == [[*chars(render(ASK, "yes")), EOS], [*chars(render(ASK, "ok")), EOS]]
    assert columns["rejected_input_ids"] == [[*chars(render(ASK, "no")), EOS], [*chars(render(ASK, "nah")), EOS]]
    assert columns["margin"] == [2.5, 0.0]
    assert columns["chosen_prompt_tokens"] == columns["rejected_prompt_tokens"] == [len(prompt)] * 2
    assert counts == {}
    # "yes" and "no": cut from the left to their last 2 characters the two sides still differ: "s"+EOS, "o"+EOS
    cut, counts = _batch("rm", [pair], max_seq_len=2, truncation="left")
    assert cut["chosen_input_ids"] == [[ord("s"), EOS]] and cut["rejected_input_ids"] == [[ord("o"), EOS]]
    assert cut["chosen_prompt_tokens"] == cut["rejected_prompt_tokens"] == [0] and counts == {"truncated": 1}
    same_tail = make_row(ASK, "ab", "cb", source="t")  # cut from the left to 2, both become "b" + EOS
    same, counts = _batch("rm", [same_tail], max_seq_len=2, truncation="left")
    assert same["chosen_input_ids"] == [] and counts == {"truncated": 1, "dropped_identical_after_truncation": 1}
    # cut from the right, "yes" + EOS loses a token and "no" + EOS fits: one truncated pair
    one_side, counts = _batch("rm", [pair], max_seq_len=len(prompt) + 4, truncation="right")
    assert one_side["chosen_input_ids"] == [chars(render(ASK, "yes"))] and counts == {"truncated": 1}
    long, counts = _batch("rm", [pair], max_seq_len=len(prompt) + 4)  # "yes" + EOS is 5 tokens after the prompt
    assert long["chosen_input_ids"] == [] and counts == {"dropped_too_long": 1}


def test_kto_columns_by_hand():
    prompt = render(ASK)
    rows = [make_row(ASK, "yes", "no", source="t"), make_row(ASK, None, "bad", label=False, source="t"),
            make_row(ASK, source="t")]
    columns, counts = _batch("kto", rows, max_seq_len=64)
    assert columns["input_ids"] == [[*chars(render(ASK, text)), EOS] for text in ("yes", "no", "bad")]
    assert columns["prompt_tokens"] == [len(prompt)] * 3 and columns["label"] == [1, 0, 0]
    assert counts == {"not_for_phase": 1}
    cut, counts = _batch("kto", rows[:1], max_seq_len=len(prompt) + 3, truncation="right")  # " yes" + EOS, " no" + EOS
    assert cut["input_ids"] == [[*chars(prompt), *chars(" ye")], [*chars(prompt), *chars(" no")]]
    assert cut["prompt_tokens"] == [len(prompt)] * 2 and counts == {"truncated": 2}
    dropped, counts = _batch("kto", rows[:1], max_seq_len=len(prompt) + 4)
    assert dropped["input_ids"] == [[*chars(render(ASK, "no")), EOS]] and counts == {"dropped_too_long": 1}


def test_ppo_prompts_by_hand():
    prompt = render(ASK)
    columns, counts = _batch("ppo", [make_row(ASK, source="t")], max_prompt_len=len(prompt))
    assert columns == {"prompt_input_ids": [chars(prompt)]} and counts == {}
    cut, counts = _batch("ppo", [make_row(ASK, source="t")], max_prompt_len=3, truncation="left")
    assert cut == {"prompt_input_ids": [chars(prompt)[-3:]]} and counts == {"truncated": 1}
    dropped, counts = _batch("ppo", [make_row(ASK, source="t")], max_prompt_len=3)
    assert dropped == {"prompt_input_ids": []} and counts == {"dropped_too_long": 1}


def test_ptx_text_is_cut_into_blocks_of_max_seq_len():
    columns, counts = _batch("ptx", [{"text": "abcde"}, {"text": "x"}], max_seq_len=3)
    assert columns == {"input_ids": [chars("abc"), [*chars("de"), EOS], [ord("x"), EOS]]}
    assert counts == {"split_into_blocks": 1}


# ------------------------------------------------------------------------------------------------------ entries


def _entry(path: Path, key: str = "k", rows: int = 1, phase: str = "ppo") -> Path:
    """A sound ``ppo`` cache entry written by hand: ``rows`` prompts of one token and an info.json that says so."""
    from prefdata.storage.dataset import file_sha256

    path.mkdir()
    schema = token_store.LAYOUT[phase]
    with pa.OSFile(str(path / token_store.TOKENS_FILE), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_table(pa.table({"prompt_input_ids": [[5]] * rows}, schema=schema))
    data = path / token_store.TOKENS_FILE
    info = {"format": token_store.CACHE_FORMAT, "key": key, "counts": {"rows_out": rows},
            "tokens": {"bytes": data.stat().st_size, "sha256": file_sha256(data)}}
    (path / "info.json").write_text(json.dumps(info), encoding="utf-8")
    return path


def _rewrite_info(entry: Path, **changes) -> None:
    info = json.loads((entry / "info.json").read_text(encoding="utf-8"))
    (entry / "info.json").write_text(json.dumps({**info, **changes}), encoding="utf-8")


def test_open_verified_opens_a_sound_entry(tmp_path):
    cache = token_store.open_verified(_entry(tmp_path / "e"), "k", "ppo")
    assert len(cache) == 1 and not cache.built


@pytest.mark.parametrize(("damage", "message"), [
    (lambda e: (e / "info.json").write_text("{", encoding="utf-8"), "unreadable info.json"),
    (lambda e: (e / "info.json").unlink(), "unreadable info.json: No such file or directory"),
    (lambda e: (e / "info.json").write_text("[]", encoding="utf-8"), "info.json is not this entry's"),
    (lambda e: _rewrite_info(e, key="other"), "info.json is not this entry's"),
    (lambda e: _rewrite_info(e, format=token_store.CACHE_FORMAT - 1), "info.json is not this entry's"),
    (lambda e: _rewrite_info(e, tokens=[]), "info.json is not this entry's"),
    (lambda e: (e / token_store.TOKENS_FILE).unlink(), "tokens.arrow is missing"),
    (lambda e: _rewrite_info(e, tokens={"bytes": 3, "sha256": "x"}),
     "tokens.arrow is {size} bytes, info.json says 3"),
    (lambda e: _rewrite_info(e, tokens={"bytes": (e / token_store.TOKENS_FILE).stat().st_size, "sha256": "x"}),
     "tokens.arrow checksum differs from info.json"),
    (lambda e: _rewrite_info(e, counts={"rows_out": 2}), "tokens.arrow does not hold what info.json says"),
    (lambda e: _rewrite_info(e, counts=[]), "tokens.arrow does not hold what info.json says"),
])
def test_open_verified_names_the_damage(tmp_path, damage, message):
    entry = _entry(tmp_path / "e")
    size = (entry / token_store.TOKENS_FILE).stat().st_size
    damage(entry)
    with pytest.raises(token_store.DamagedEntry) as refused:
        token_store.open_verified(entry, "k", "ppo")
    assert str(refused.value).startswith(message.format(size=size))


def test_open_verified_refuses_another_phases_columns(tmp_path):
    with pytest.raises(token_store.DamagedEntry, match="does not hold what info.json says"):
        token_store.open_verified(_entry(tmp_path / "e"), "k", "sft")


def test_cache_root_is_created_or_named_in_one_line(tmp_path):
    assert token_store.cache_root(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("mine", encoding="utf-8")
    with pytest.raises(PrefdataError) as refused:
        token_store.cache_root(tmp_path / "file")
    assert refused.value.message == "token cache dir is not a directory; give --cache-dir DIR"
    assert refused.value.file == str(tmp_path / "file") and (tmp_path / "file").read_text(encoding="utf-8") == "mine"


def test_discard_removes_a_damaged_entry_directory_or_file(tmp_path):
    entry = _entry(tmp_path / "e")
    token_store.discard(entry)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x", encoding="utf-8")
    token_store.discard(tmp_path / "f")
    token_store.discard(tmp_path / "gone")  # nothing there: nothing to do
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- datasets and tokenized


@pytest.fixture
def sft_dir(tmp_path) -> Path:
    from support import write_dataset

    return write_dataset(tmp_path / "data", {"sft_train": [make_row(ASK, "yes", "no", source="t")],
                                             "sft_eval": [make_row(ASK, "ok", "nah", source="t")] * 2})


def test_split_checksums_are_the_shards_sha256_and_the_phase_must_fit_the_schema(sft_dir):
    shards = sorted((sft_dir / "sft_train").glob("*.arrow"))  # the files themselves, not what the manifest says
    assert len(shards) == 1 and tokens.split_checksums(sft_dir, "sft_train", "sft") == [
        hashlib.sha256(path.read_bytes()).hexdigest() for path in shards]
    with pytest.raises(PrefdataError) as refused:
        tokens.split_checksums(sft_dir, "sft_train", "ptx")
    assert refused.value.message.endswith(f"; the ptx phase needs a {UNSUP_SCHEMA_ID} directory")
    assert refused.value.file == str(sft_dir)


def test_build_cache_counts(sft_dir, tmp_path):
    spec = TokenizeSpec("sft", max_seq_len=64)
    counts = tokens.build_cache(sft_dir, "sft_eval", CharTokenizer(bos=None), spec, tmp_path / "t.arrow", quiet=True)
    length = len(render(ASK, "ok")) + 1  # + EOS
    assert {k: v for k, v in counts.items() if k != "seconds"} == {"rows_in": 2, "rows_out": 2, "tokens": 2 * length}
    assert isinstance(counts["seconds"], float) and counts["seconds"] >= 0


def test_tokenized_records_who_built_it_and_rebuilds_a_damaged_entry_with_a_warning(sft_dir, tmp_path, monkeypatch,
                                                                                   capsys):
    monkeypatch.delenv("RANK", raising=False)
    spec = TokenizeSpec("sft", max_seq_len=64)
    built = tokens.tokenized(sft_dir, "sft_train", CharTokenizer(), spec, tmp_path / "c", quiet=True)
    assert built.built and built.info["built_by"] == {"host": socket.gethostname(), "pid": os.getpid(), "rank": "0"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", built.info["built_at"])
    assert built.info["split"] == "sft_train" and built.info["spec"]["max_seq_len"] == 64
    (built.directory / token_store.TOKENS_FILE).write_bytes(b"damaged")
    again = tokens.tokenized(sft_dir, "sft_train", CharTokenizer(), spec, tmp_path / "c", quiet=True)
    assert again.built and len(again) == 1
    captured = capsys.readouterr()
    assert "damaged token cache entry" in captured.err and "rebuilding it" in captured.err and captured.out == ""


def test_tokenized_phase_gives_the_train_and_eval_caches(sft_dir, tmp_path):
    cfg = SimpleNamespace(data=sft_dir, cache_dir=tmp_path / "c", quiet=True)
    train, evaluation = tokens.tokenized_phase(cfg, "sft", CharTokenizer(), TokenizeSpec("sft", max_seq_len=64))
    assert (len(train), len(evaluation)) == (1, 2)
    assert train.info["split"] == "sft_train" and evaluation.info["split"] == "sft_eval"
