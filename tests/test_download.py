"""`prefdata download`: the CLI layer, the network boundary, local copies, LFS pointers and generic Hub datasets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefdata.cli import main
from prefdata.jobs.download import download_hub
from prefdata.storage.dataset import iter_rows, read_manifest
from prefdata.storage.hub import split_of


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_without_network_one_line_pointing_to_from(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf")}
    for name in ("hh-rlhf", "shp", "someone/dataset"):
        done = subprocess.run([sys.executable, "-m", "prefdata.cli", "download", name, "--out", str(tmp_path / "o")],
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot reach the Hugging Face Hub" in lines[0] and "--from PATH" in lines[0]
        assert not (tmp_path / "o").exists()


def test_cli_hh_from_local_copy(hh_harmless_test, tmp_path, capsys):
    code, _, err = _cli(["download", "hh-rlhf", "--from", str(hh_harmless_test.parent.parent), "--out",
                         str(tmp_path / "o"), "--quiet"], capsys)
    assert code == 0 and err == ""
    manifest = read_manifest(tmp_path / "o")
    assert manifest["command"] == "download hh-rlhf" and manifest["options"]["subset"] == "harmless-base"
    assert manifest["counts"]["records_in"] == 2312
    code, _, err = _cli(["download", "hh-rlhf", "--from", str(hh_harmless_test.parent.parent), "--out",
                         str(tmp_path / "o")], capsys)
    assert code == 2 and "--overwrite" in err  # re-running never clobbers silently


def test_lfs_pointer_is_named(tmp_path, capsys):
    pointer = tmp_path / "hub" / "harmless-base" / "test.jsonl.gz"
    pointer.parent.mkdir(parents=True)
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab12\nsize 742801\n")
    code, _, err = _cli(["download", "hh-rlhf", "--from", str(tmp_path / "hub"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and str(pointer) in err and "Git LFS pointer" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_layout_and_option_mistakes_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = _cli(["download", "hh-rlhf", "--from", str(tmp_path / "empty"), "--out", str(tmp_path / "o")],
                        capsys)
    assert code == 2 and "harmless-base" in err and "<subset>/{train,test}.jsonl.gz" in err
    code, _, err = _cli(["download", "shp", "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "no such directory" in err
    code, _, err = _cli(["download", "hh-rlhf", "--domains", "x", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--domains applies to shp" in err
    code, _, err = _cli(["download", "not-a-repo", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "owner/name" in err


def test_split_names_follow_the_file_names():
    assert split_of("data/train-00000-of-00002.parquet") == "train"
    assert split_of("askculinary/validation.json") == "validation"
    assert split_of("dev.jsonl") == "validation"
    assert split_of("eval/part1.jsonl") == "test"
    assert split_of("pairs.jsonl") is None


def test_generic_hub_dataset_from_local_copy(tmp_path, capsys):
    repo = tmp_path / "hub"
    (repo / "data").mkdir(parents=True)
    train = [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
             {"prompt": "2+2?", "chosen": "4", "rejected": "4"},
             {"prompt": "Say hi in Chinese.", "chosen": "你好", "rejected": "再见"}]
    test = [{"prompt": "Largest planet?", "chosen": "Jupiter.", "rejected": "Mars."}]
    (repo / "data" / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in train),
                                               encoding="utf-8")
    (repo / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test), encoding="utf-8")
    (repo / "README.md").write_text("# a dataset card, not data\n")
    code, _, err = _cli(["download", "someone/pairs", "--from", str(repo), "--out", str(tmp_path / "o"), "--quiet"],
                        capsys)
    assert code == 0, err
    manifest = read_manifest(tmp_path / "o")
    assert manifest["hub"]["files"] == {"test": ["data/test.jsonl"], "train": ["data/train.jsonl"]}
    assert manifest["counts"]["quarantined_by_reason"] == {"identical_pair": 1}
    rows = list(iter_rows(tmp_path / "o"))
    expected_train = [r["chosen"] for r in train if r["chosen"] != r["rejected"]]
    assert [r["chosen"] for s, r in rows if s == "train"] == expected_train
    assert [r["chosen"] for s, r in rows if s == "test"] == ["Jupiter."]
    assert {r["source"] for _, r in rows} == {"hub/someone/pairs"}


def test_generic_hub_fail_mode_stops_at_first_bad_record(tmp_path):
    repo = tmp_path / "hub"
    repo.mkdir()
    (repo / "train.jsonl").write_text('{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"prompt": "Q"\n')
    from prefdata.contract.errors import PrefdataError

    with pytest.raises(PrefdataError, match=r"bad_json") as info:
        download_hub("someone/x", tmp_path / "o", from_path=repo, on_error="fail", quiet=True)
    assert info.value.line == 2
    assert not Path(tmp_path / "o").exists()
