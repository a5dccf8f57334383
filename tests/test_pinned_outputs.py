"""Pins the bytes of what `import`, `download`, `split` and `export` write for the bundled sample and the real HH file.

The digests were taken on main before the re-layout into contract/storage/formats/pipeline/llm/jobs/cli (issue 9),
whose promise is "behaviour unchanged": a refactor that changes one byte of a shard, a quarantine line or an export
fails here. Manifests and export reports are left out (they record paths and the version); every data file is in.
Input paths inside quarantine lines are replaced by ``<in>`` and ``<sample>`` so the digest does not depend on where
the repository or the shared data live.
A deliberate change of output must update these digests and say why in the commit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from support import run_cli

from prefdata.contract.resources import sample_path

_SKIP = {"prefdata.json", "prefdata-export.json"}


def tree_digest(root: Path, replace: dict[str, str]) -> str:
    """sha256 over (relative path, content) of every data file below ``root``, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in _SKIP):
        data = path.read_bytes()
        for old, new in replace.items():
            data = data.replace(old.encode(), new.encode())
        digest.update(str(path.relative_to(root)).encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


# prefdata.preference/2 changed the bytes of the shards (three more columns, all null for these rows, and the message
# struct widened by the tool fields: Arrow data, shard metadata, dataset_info.json, and state.json's fingerprint) and
# of the canonical-row exports (jsonl: three null keys per row; parquet: the /2 schema). Rows, ids, groups, splits and
# quarantine lines are unchanged (tests/test_storage_v2.py pins the HH ids; the trl/dschat/chatllama exports keep
# their digests). The /1 digests: sample/raw 44b701fdff9a46c5, sample/split 1f562a53ad31e175, sample/export-jsonl
# c8b7765744618d29, sample/export-parquet 4987941be7382900, hh/raw 6ca1b133520a3751, hh/split df1466865770ebf5.
PINNED = {
    "sample/raw": "30b63a8479679f20",  # /2 shards
    "sample/split": "4cbad1a2339bdea2",  # /2 shards
    "sample/export-trl": "7347908a35259211",
    "sample/export-dschat": "7fb189116f1b9751",
    "sample/export-chatllama": "7fa9f82a648362f6",
    "sample/export-jsonl": "ce77bd686ffba736",  # /2 columns
    "sample/export-parquet": "537611f232a04c95",  # /2 schema
    "hh/raw": "007af7b377d8f5ba",  # /2 shards
    "hh/split": "e93205f292789fc3",  # /2 shards
    "hh/export-trl": "b229b43d96e5e0f1",
    "hh/export-dschat": "2f5b4338b989c543",
}


def _produce(capsys, tmp: Path, hh_dir: Path) -> dict[str, Path]:
    made: dict[str, Path] = {}

    def cli(*argv) -> None:
        code, _, err = run_cli(capsys, *argv, "--quiet")
        assert code == 0, err

    cli("import", "--sample", "--out", tmp / "sample/raw")
    cli("download", "hh-rlhf", "--from", hh_dir, "--out", tmp / "hh/raw")
    for name in ("sample", "hh"):
        cli("split", tmp / name / "raw", "--ratio", "6,2,2", "--eval-fraction", "0.1", "--seed", "1234",
            "--out", tmp / name / "split")
    for fmt in ("trl", "dschat", "chatllama", "jsonl", "parquet"):
        cli("export", tmp / "sample/split", "--format", fmt, "--out", tmp / f"sample/export-{fmt}")
    for fmt in ("trl", "dschat"):
        cli("export", tmp / "hh/split", "--format", fmt, "--out", tmp / f"hh/export-{fmt}")
    for key in PINNED:
        made[key] = tmp / key
    return made


@pytest.mark.slow
def test_outputs_are_byte_identical_to_the_pinned_ones(capsys, tmp_path, hh_harmless_test):
    hh_dir = hh_harmless_test.parent.parent  # .../hh-rlhf, laid out as the Hub repository
    made = _produce(capsys, tmp_path, hh_dir)
    replace = {str(hh_dir): "<in>", str(sample_path().parent): "<sample>"}
    got = {key: tree_digest(path, replace) for key, path in made.items()}
    assert got == PINNED
