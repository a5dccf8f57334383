"""`prefdata.storage.hub` without the network: local copies, split names, data files, and the Hub's errors mapped
to one-line `PrefdataError`s (``snapshot_download`` is replaced, nothing is downloaded)."""

from __future__ import annotations

from types import SimpleNamespace

import huggingface_hub
import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.storage import hub


def test_local_copy_checks_the_directory_and_says_what_layout_was_expected(tmp_path):
    assert hub.local_copy(tmp_path, "org/data", "train.jsonl") == tmp_path
    with pytest.raises(PrefdataError, match=r"expected a local copy of org/data: train\.jsonl"):
        hub.local_copy(tmp_path / "missing", "org/data", "train.jsonl")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrefdataError, match="is a file; --from takes a directory"):
        hub.local_copy(tmp_path / "file", "org/data", "train.jsonl")


@pytest.mark.parametrize(
    ("relative", "split"),
    [("train.jsonl.gz", "train"), ("data/training-0001.parquet", "train"), ("valid.csv", "validation"),
     ("test/eval.json", "test"), ("testing.jsonl", "test"), ("train/dev.jsonl", "validation"),
     ("harmless-base/TEST.jsonl", "test"), ("contest.jsonl", None)],
)
def test_split_of_reads_whole_words_and_the_file_name_first(relative, split):
    assert hub.split_of(relative) == split


def test_data_files_groups_by_split_and_skips_hidden_and_other_files(tmp_path):
    for name in ("a/train.jsonl.gz", "a/test.jsonl", "b/pairs.csv", "README.md", ".cache/train.jsonl",
                 "a/.hidden.jsonl", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    files = hub.data_files(tmp_path)
    assert {split: [p.relative_to(tmp_path).as_posix() for p in paths] for split, paths in files.items()} == {
        "test": ["a/test.jsonl"], "train": ["a/train.jsonl.gz", "b/pairs.csv"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrefdataError, match="no data files"):
        hub.data_files(tmp_path / "empty")


def test_snapshot_returns_the_folder_and_passes_the_request_on(tmp_path, monkeypatch):
    seen = {}

    def fake(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    assert hub.snapshot("org/data", ["*.jsonl"], revision="v1") == tmp_path
    assert seen == {"repo_id": "org/data", "repo_type": "dataset", "allow_patterns": ["*.jsonl"], "revision": "v1"}


def _raising(error: BaseException):
    def fake(*args, **kwargs):
        raise error
    return fake


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ConnectionError("down"), "cannot reach the Hugging Face Hub for org/data"),
        (TimeoutError(), "pass --from PATH (hint)"),
        (OSError("Connection refused"), "no network"),
    ],
)
def test_snapshot_without_network_points_to_from(monkeypatch, error, message):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raising(error))
    with pytest.raises(PrefdataError) as caught:
        hub.snapshot("org/data", ["*"], hint=" (hint)")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_snapshot_maps_hub_refusals_to_one_line_errors(monkeypatch):
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    response = SimpleNamespace(headers={}, request=None)  # all the errors read of the HTTP response
    cases = [(GatedRepoError("gated", response=response), "is gated"),
             (RepositoryNotFoundError("nope", response=response), "no dataset 'org/data'"),
             (RevisionNotFoundError("nope", response=response), "has no revision 'v9'"),
             (HfHubHTTPError("429 Too Many Requests\nretry later", response=response),
              "the Hub refused the download of org/data: 429 Too Many Requests$")]
    for error, message in cases:
        monkeypatch.setattr(huggingface_hub, "snapshot_download", _raising(error))
        with pytest.raises(PrefdataError, match=message):
            hub.snapshot("org/data", ["*"], revision="v9")


def test_snapshot_lets_other_os_errors_through(monkeypatch):
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _raising(PermissionError("read-only cache")))
    with pytest.raises(PermissionError):
        hub.snapshot("org/data", ["*"])
