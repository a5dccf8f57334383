"""Files of a Hugging Face Hub dataset repository, from the Hub or from a local copy laid out the same way.

Every download reads plain files from a directory with the repository's layout: either a snapshot fetched with
`huggingface_hub.snapshot_download` (only the files asked for), or ``--from PATH``, a copy made elsewhere. One code path
reads both, so what is tested offline is what runs online, and each input file gets its sha256 in the manifest.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def quiet_datasets(quiet: bool) -> Iterator[None]:
    """`datasets` progress bars off for the block when ``quiet`` (and back on after, if they were on)."""
    from datasets.utils import logging as datasets_logging

    shown = datasets_logging.is_progress_bar_enabled()
    if quiet and shown:
        datasets_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and shown:
            datasets_logging.enable_progress_bar()


def check_push(repo_id: str) -> None:
    """Everything a push needs that can be known before anything is written: the Hub reachable in principle (not
    offline), a valid repository name, a token. Each failure is one line naming the real problem."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if constants.HF_HUB_OFFLINE:
        raise PrefdataError("HF_HUB_OFFLINE is set: cannot push to the Hugging Face Hub", field="push_to_hub")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise PrefdataError(f"{repo_id!r} is not a Hub repository name: {str(e).splitlines()[0]}",
                            field="push_to_hub") from None
    if not get_token():
        raise PrefdataError("no Hugging Face token: set HF_TOKEN or run `hf auth login` before --push-to-hub",
                            field="push_to_hub")


@contextlib.contextmanager
def hub_uploads(folder: Path, configs: dict[str, dict[str, str]]) -> Iterator[dict[str, Any]]:
    """Each config of ``folder`` loaded as the Hub will read it (the README's `configs:`), so a config whose splits do
    not share one set of features is refused here, naming it, before anything is sent. Yields {config: DatasetDict},
    valid for the block (its Arrow files live in a cache of its own, removed after)."""
    import tempfile

    from datasets import load_dataset

    uploads = {}
    # A cache of its own: datasets keys a local folder's cache by the folder's name, not its path, so two exports to
    # folders of one name would read as the first one (found by tests/test_mutants_export_io.py).
    with tempfile.TemporaryDirectory(prefix="prefdata-push-") as cache, quiet_datasets(True):
        for config in sorted(configs):
            try:
                uploads[config] = load_dataset(str(folder), config, cache_dir=cache)
            except Exception as e:  # datasets raises many types (CastError, DatasetGenerationError): all mean this
                while e.__cause__ is not None:  # the root cause names the column; the wrapper says only "an error"
                    e = e.__cause__
                raise PrefdataError(f"config {config!r} ({', '.join(configs[config])}) does not load as one dataset, "
                                    f"so nothing was pushed: {type(e).__name__}: "
                                    f"{str(e).splitlines()[0] if str(e) else ''}", field="push_to_hub") from None
        yield uploads


def push_configs(uploads: dict[str, Any], repo_id: str, *, private: bool = False) -> None:
    """Push each config (a DatasetDict) as its own config of ``repo_id``; the token comes from the environment."""
    for config, dataset_dict in uploads.items():
        try:
            dataset_dict.push_to_hub(repo_id, config_name=config, private=private)
        except Exception as e:  # network, auth or permission: the user's environment, not a bug
            raise PrefdataError(f"push of config {config!r} to {repo_id} failed: {type(e).__name__}: "
                                f"{str(e).splitlines()[0] if str(e) else ''}", field="push_to_hub") from None
