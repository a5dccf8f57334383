"""The trainers on hostile input and state (issue #10), through `prefdata train`: a damaged dataset or token cache is
never used, one writer per `--out`, `--out` never one of the run's inputs, nothing half written, a damaged `--resume`
checkpoint, `ppo --unsup` on a preference directory and a reward model without a trained head. Every failure is one
line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from prefdata.cli import main  # noqa: E402

SIZES = {"sft_train": 16, "sft_eval": 4, "rm_train": 16, "rm_eval": 4, "ppo_train": 8, "ppo_eval": 2}


@pytest.fixture(autouse=True)
def _world_of_one(monkeypatch):
    helpers.single_process_env(monkeypatch)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> Path:
    """A split directory, a tokenizer and an untrained tiny causal LM saved as a model directory (what `train sft`
    leaves: weights, config and tokenizer, no score head)."""
    from trainers.components import models

    root = tmp_path_factory.mktemp("assets")
    helpers.write_split_dir(root / "split", SIZES)
    tokenizer = helpers.train_tokenizer(root / "tok")
    model = models.load_causal_lm("tiny-llama", tokenizer)
    model.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    return root


def _fails(args: list[str], capsys) -> str:
    """Run ``prefdata ARGS``; it must exit non-zero with exactly one line on stderr, which is returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code not in (None, 0)
    err = capsys.readouterr().err.strip()
    assert err.startswith("prefdata: error:") and "\n" not in err, err
    return err


def _succeeds(args: list[str]) -> None:
    try:
        main(args)
    except SystemExit as e:
        assert e.code in (None, 0)


def _sft(assets: Path, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "sft", "--data", str(data), "--model", "tiny-gpt2", "--tokenizer", str(assets / "tok"),
            "--out", str(out), "--cache-dir", str(cache), "--dtype", "fp32", "--micro-batch-size", "8",
            "--max-steps", "1", "--quiet", *extra]


def _shard(data: Path, split: str) -> Path:
    manifest = json.loads((data / "prefdata.json").read_text())
    return data / split / manifest["splits"][split]["shards"][0]["file"]


def _flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ the token cache


def test_a_damaged_copy_of_the_dataset_is_refused_and_cannot_poison_the_cache(assets, tmp_path, capsys):
    damaged = _copy(assets / "split", tmp_path / "damaged")
    shard = _shard(damaged, "sft_train")
    _flip_byte(shard, shard.stat().st_size // 2)  # same size, different bytes
    err = _fails(_sft(assets, damaged, tmp_path / "o1", tmp_path / "cache"), capsys)
    assert str(shard) in err and "checksum" in err
    assert not (tmp_path / "o1").exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # nothing was built from the damaged copy


def test_a_warm_cache_does_not_hide_a_deleted_shard(assets, tmp_path, capsys):
    data = _copy(assets / "split", tmp_path / "split")
    _succeeds(_sft(assets, data, tmp_path / "o1", tmp_path / "cache"))
    shard = _shard(data, "rm_eval")  # a split this phase does not even read: the directory is damaged all the same
    shard.unlink()
    err = _fails(_sft(assets, data, tmp_path / "o2", tmp_path / "cache"), capsys)
    assert str(shard) in err and "missing" in err
    assert not (tmp_path / "o2").exists()


def test_a_cache_dir_that_is_a_file_is_one_line_and_the_file_stays(assets, tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.write_text("mine\n")
    err = _fails(_sft(assets, assets / "split", tmp_path / "o", cache), capsys)
    assert str(cache) in err and "not a directory" in err
    assert cache.read_text() == "mine\n"


def _truncate(entry: Path) -> None:
    tokens = entry / "tokens.arrow"
    tokens.write_bytes(tokens.read_bytes()[: tokens.stat().st_size // 2])


def _flip_token(entry: Path) -> None:
    tokens = entry / "tokens.arrow"
    _flip_byte(tokens, tokens.stat().st_size // 2)


def _bad_info(entry: Path) -> None:
    (entry / "info.json").write_text("{not json")


def _info_says_other_sha(entry: Path) -> None:
    info = json.loads((entry / "info.json").read_text())
    info["tokens"]["sha256"] = "0" * 64
    (entry / "info.json").write_text(json.dumps(info))


def _entry_is_a_file(entry: Path) -> None:
    import shutil

    shutil.rmtree(entry)
    entry.write_text("junk")


@pytest.mark.parametrize("damage", [_truncate, _flip_token, _bad_info, _info_says_other_sha, _entry_is_a_file],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_damaged_cache_entry_is_rebuilt_with_one_warning(assets, tmp_path, capsys, damage):
    from transformers import AutoTokenizer

    from trainers.components.tokens import TokenizeSpec, tokenized

    tokenizer = AutoTokenizer.from_pretrained(assets / "tok")
    spec = TokenizeSpec("sft")
    clean = tokenized(assets / "split", "sft_train", tokenizer, spec, tmp_path / "reference", quiet=True)
    expected = [clean[i]["input_ids"].tolist() for i in range(len(clean))]
    first = tokenized(assets / "split", "sft_train", tokenizer, spec, tmp_path / "cache", quiet=True)
    damage(first.directory)
    capsys.readouterr()
    again = tokenized(assets / "split", "sft_train", tokenizer, spec, tmp_path / "cache", quiet=True)
    err = capsys.readouterr().err.strip()
    assert again.built and err.startswith("prefdata: warning:") and "rebuilding" in err and "\n" not in err
    assert [again[i]["input_ids"].tolist() for i in range(len(again))] == expected
    capsys.readouterr()
    assert not tokenized(assets / "split", "sft_train", tokenizer, spec, tmp_path / "cache", quiet=True).built
    assert capsys.readouterr().err == ""  # the rebuilt entry is sound: opened without a word


def test_other_content_under_a_borrowed_fingerprint_never_reaches_the_cache(assets, tmp_path):
    """The cache key is the shards' content; a manifest that borrows another dataset's fingerprint for other rows is
    refused before any cache entry is looked up (the fingerprint is checked against the shards' checksums)."""
    from transformers import AutoTokenizer

    from prefdata.contract.errors import PrefdataError
    from trainers.components.tokens import TokenizeSpec, tokenized

    tokenizer = AutoTokenizer.from_pretrained(assets / "tok")
    other = helpers.write_split_dir(tmp_path / "other", SIZES, seed=5)  # other rows ...
    manifest = json.loads((other / "prefdata.json").read_text())
    original = json.loads((assets / "split" / "prefdata.json").read_text())
    manifest["splits"]["sft_train"]["fingerprint"] = original["splits"]["sft_train"]["fingerprint"]  # ... same name
    (other / "prefdata.json").write_text(json.dumps(manifest))
    first = tokenized(assets / "split", "sft_train", tokenizer, TokenizeSpec("sft"), tmp_path / "cache", quiet=True)
    assert first.built
    with pytest.raises(PrefdataError, match="fingerprint does not match"):
        tokenized(other, "sft_train", tokenizer, TokenizeSpec("sft"), tmp_path / "cache", quiet=True)


# ------------------------------------------------------------------------------------------------------- --out


def test_a_second_trainer_on_the_same_out_fails_at_once_naming_the_holder(assets, tmp_path, capsys):
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom prefdata.storage.publish import output_lock\n"
         f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=helpers.subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        err = _fails(_sft(assets, assets / "split", out, tmp_path / "cache"), capsys)
        assert f"PID {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    assert not out.exists()


def test_out_may_not_be_or_lie_inside_an_input(assets, tmp_path, capsys):
    model = _copy(assets / "lm", tmp_path / "model")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    err = _fails(["train", "reward", "--data", str(assets / "split"), "--model", str(model), "--out", str(model),
                  "--cache-dir", str(tmp_path / "cache"), "--dtype", "fp32", "--max-steps", "1", "--quiet"], capsys)
    assert "--model" in err and "overwrite its own input" in err
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    data = _copy(assets / "split", tmp_path / "split")
    err = _fails(_sft(assets, data, data / "runs" / "sft", tmp_path / "cache"), capsys)
    assert "--data" in err and not (data / "runs").exists()


def test_train_tokenizer_does_not_replace_a_models_tokenizer(assets, tmp_path, capsys):
    model = _copy(assets / "lm", tmp_path / "model")
    tokenizer_file = (model / "tokenizer.json").read_bytes()
    err = _fails(["train", "tokenizer", "--data", str(assets / "split"), "--out", str(model), "--vocab-size", "300",
                  "-q"], capsys)
    assert "more than a tokenizer" in err and "config.json" in err
    assert (model / "tokenizer.json").read_bytes() == tokenizer_file


def test_a_failed_run_leaves_no_out_and_a_rerun_starts_a_fresh_log(assets, tmp_path, capsys, monkeypatch):
    from prefdata.contract.errors import PrefdataError
    from trainers.runtime import checkpoints

    out = tmp_path / "o"
    real_save = checkpoints.save_hf

    def disk_full(*args, **kwargs):
        raise PrefdataError("No space left on device", file="model.safetensors")

    monkeypatch.setattr(checkpoints, "save_hf", disk_full)
    _fails(_sft(assets, assets / "split", out, tmp_path / "cache"), capsys)
    assert not out.exists() and not list(tmp_path.glob(".o.tmp-*"))  # neither half an --out nor its temp sibling
    monkeypatch.setattr(checkpoints, "save_hf", real_save)

    (tmp_path / ".o.tmp-999999").mkdir()  # what a run killed with SIGKILL leaves
    _succeeds(_sft(assets, assets / "split", out, tmp_path / "cache"))
    assert "removed" in capsys.readouterr().err and not (tmp_path / ".o.tmp-999999").exists()
    _succeeds(_sft(assets, assets / "split", out, tmp_path / "cache"))  # a fresh run over a trainer's --out: a fresh log
    events = [json.loads(line).get("event") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("end") == 1
    (tmp_path / "not-mine").mkdir()
    (tmp_path / "not-mine" / "notes.txt").write_text("keep me")
    err = _fails(_sft(assets, assets / "split", tmp_path / "not-mine", tmp_path / "cache"), capsys)
    assert "refusing to overwrite" in err and (tmp_path / "not-mine" / "notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------------------------------------------ --resume


def test_resume_from_a_dangling_or_truncated_checkpoint_is_one_line(assets, tmp_path, capsys):
    out = tmp_path / "o"
    _succeeds(_sft(assets, assets / "split", out, tmp_path / "cache", "--save-steps", "1"))
    latest = out / "checkpoints" / "latest"
    tag = latest.read_text().strip()
    latest.write_text("step-99")
    err = _fails(_sft(assets, assets / "split", out, tmp_path / "cache", "--resume"), capsys)
    assert "step-99" in err and "not there" in err
    latest.write_text(tag)
    states = sorted((out / "checkpoints" / tag).glob("*.pt"))
    assert states
    for state in states:
        state.write_bytes(state.read_bytes()[:100])
    err = _fails(_sft(assets, assets / "split", out, tmp_path / "cache", "--resume"), capsys)
    assert f"cannot load checkpoint {tag}" in err
    assert (out / "config.json").exists()  # the failed resume left the published checkpoint as it was


# ----------------------------------------------------------------------------------------------------------- ppo


def _ppo(assets: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["train", "ppo", "--data", str(assets / "split"), "--model", str(assets / "lm"), "--out", str(tmp_path / "o"),
            "--cache-dir", str(tmp_path / "cache"), "--dtype", "fp32", "--zero-stage", "0", "--micro-batch-size", "4",
            "--max-new-tokens", "4", "--max-steps", "1", "--quiet", *extra]


def test_ppo_unsup_given_a_preference_directory_is_one_line(assets, tmp_path, capsys):
    from prefdata.storage.dataset import DatasetWriter

    imported = tmp_path / "imported"  # what `prefdata import` writes: preference rows in split "train"
    with DatasetWriter(imported, command="test-import") as writer:
        for row in helpers.rows(4, seed=3):
            writer.count_in()
            writer.write(row, "train")
    err = _fails(_ppo(assets, tmp_path, "--reward-model", str(assets / "lm"), "--unsup", str(imported),
                      "--ptx-coef", "0.5"), capsys)
    assert str(imported) in err and "prefdata.unsup/1" in err
    assert not (tmp_path / "o").exists()


def test_ppo_refuses_a_reward_model_without_a_trained_head(assets, tmp_path, capsys):
    err = _fails(_ppo(assets, tmp_path, "--reward-model", str(assets / "lm")), capsys)
    assert "no trained reward head" in err and str(assets / "lm") in err
    assert not (tmp_path / "o").exists()
