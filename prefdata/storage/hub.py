"""Files of a Hugging Face Hub dataset repository, from the Hub or from a local copy laid out the same way.

Every download reads plain files from a directory with the repository's layout: either a snapshot fetched with
`huggingface_hub.snapshot_download` (only the files asked for), or ``--from PATH``, a copy made elsewhere. One code path
reads both, so what is tested offline is what runs online, and each input file gets its sha256 in the manifest.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prefdata.contract.errors import PrefdataError

# Split names as `datasets` infers them from file names (train/validation/test and their usual spellings).
_SPLIT_WORDS = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
_WORD = re.compile(r"[a-z]+")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".tsv", ".parquet", ".ndjson")


def local_copy(path: str | os.PathLike, repo_id: str, layout: str) -> Path:
    """Check a ``--from`` directory; the message says what layout was expected."""
    root = Path(path)
    if not root.exists():
        raise PrefdataError(f"no such directory (expected a local copy of {repo_id}: {layout})", file=str(root))
    if not root.is_dir():
        raise PrefdataError(f"is a file; --from takes a directory laid out as {repo_id} ({layout})", file=str(root))
    return root


def snapshot(repo_id: str, allow_patterns: list[str], *, revision: str | None = None, hint: str = "") -> Path:
    """Fetch the files matching ``allow_patterns`` of a Hub dataset repository; return the local snapshot directory.

    Without network (or with ``HF_HUB_OFFLINE=1`` and nothing cached) this raises one `PrefdataError` that points to
    ``--from``. The token, if any, comes from huggingface_hub's own environment/config and is never recorded.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    no_network = (
        f"cannot reach the Hugging Face Hub for {repo_id} (no network, or HF_HUB_OFFLINE is set, and no cached copy); "
        f"copy the files elsewhere and pass --from PATH{hint}"
    )
    try:
        folder = snapshot_download(repo_id, repo_type="dataset", allow_patterns=allow_patterns, revision=revision)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError):
        raise PrefdataError(no_network) from None
    except GatedRepoError:
        raise PrefdataError(f"{repo_id} is gated: accept its terms on the Hub and log in (`hf auth login` or HF_TOKEN)"
                            ) from None
    except RepositoryNotFoundError:
        raise PrefdataError(f"no dataset {repo_id!r} on the Hugging Face Hub (or it is private)") from None
    except RevisionNotFoundError:
        raise PrefdataError(f"{repo_id} has no revision {revision!r}") from None
    except HfHubHTTPError as e:
        raise PrefdataError(f"the Hub refused the download of {repo_id}: {str(e).splitlines()[0]}") from None
    except OSError as e:  # httpx/requests connection failures surface as OSError subclasses
        if "connect" in type(e).__name__.lower() or "connection" in str(e).lower():
            raise PrefdataError(no_network) from None
        raise
    return Path(folder)


def split_of(relative: str) -> str | None:
    """The split a data file belongs to, by the words of its path (``data/train-00000-of-00002.parquet`` -> train)."""
    words = _WORD.findall(relative.lower())
    for word in reversed(words):  # the file name decides before its folders
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return None


def data_files(root: Path) -> dict[str, list[Path]]:
    """The data files of a repository copy grouped by split; files that name no split go to ``train`` (as datasets
    does for a repository without split names)."""
    files = sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.name.lower().endswith(DATA_SUFFIXES)
    )
    if not files:
        raise PrefdataError(f"no data files ({', '.join(DATA_SUFFIXES)}) in the repository copy", file=str(root))
    by_split: dict[str, list[Path]] = {}
    for path in files:
        by_split.setdefault(split_of(str(path.relative_to(root))) or "train", []).append(path)
    return by_split
