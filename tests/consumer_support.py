"""What the consumer tests share: the bundled sample taken through import -> split (-> export), a tokenizer trained by
`prefdata train tokenizer`, and the readers of consumers that do not install from the package registry, re-implemented
from their source (each names the file it follows).

Re-implemented readers follow the consumer's code line for line in what they compute (the text a trainer sees, which
rows it keeps); they leave out what does not change that (logging, tokenisation to tensors, caching of indices).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from prefdata.contract.resources import sample_path
from prefdata.jobs.export import export_dataset
from prefdata.jobs.importer import import_files
from prefdata.jobs.split import split_datasets
from prefdata.storage.dataset import iter_rows

# The sample split of the README's pipeline (scripts/sample-pipeline.sh): every phase has a train and an eval part.
SPLIT_OPTIONS = {"ratio": (6, 2, 2), "eval_fraction": 0.1, "seed": 1234}


def sample_split(root: Path) -> Path:
    """The bundled sample imported and split as the README's pipeline does; returns the split directory."""
    import_files([sample_path()], root / "raw", quiet=True)
    split_datasets([root / "raw"], root / "split", quiet=True, **SPLIT_OPTIONS)
    return root / "split"


def split_rows(split_dir: Path, name: str) -> list[dict[str, Any]]:
    """The rows of one split of a dataset directory, in stored order (the export keeps that order)."""
    return [row for split, row in iter_rows(split_dir) if split == name]


def sample_export(root: Path, format: str) -> tuple[Path, Path]:
    """(split directory, its export in ``format``): `sample_split`, then ``prefdata export SPLIT --format FORMAT``."""
    split = sample_split(root)
    export_dataset(split, root / "export", format=format, quiet=True)
    return split, root / "export"


def prefdata_tokenizer(split_dir: Path, out: Path, template: str = "dschat") -> Any:
    """`prefdata train tokenizer --template TEMPLATE` on the split, loaded back as any consumer loads it."""
    from transformers import AutoTokenizer

    from trainers.recipes.tokenizer import TokenizerConfig, train_tokenizer

    train_tokenizer(TokenizerConfig(data=str(split_dir), out=str(out), vocab_size=600, template=template, quiet=True))
    return AutoTokenizer.from_pretrained(out)


# --- DeepSpeed-Chat -------------------------------------------------------------------------------------------------
# microsoft/DeepSpeedExamples, applications/DeepSpeed-Chat/dschat/utils/data/raw_datasets.py (LocalJsonFileDataset) and
# data_utils.py (get_raw_dataset, get_raw_dataset_split_index, create_dataset_split).


def dschat_local_jsonfile(chat_path: Path) -> dict[str, Any]:
    """`--data_path local/jsonfile`: DS-Chat requires both ``data/train.json`` and ``data/eval.json`` under its own
    folder and reads them with `datasets`' json builder (a JSON array or JSON Lines)."""
    from datasets import load_dataset

    train, evaluation = chat_path / "data" / "train.json", chat_path / "data" / "eval.json"
    if not (train.is_file() and evaluation.is_file()):
        raise RuntimeError("Please check both the train.json and eval.json files in your "
                           "applications/DeepSpeed-Chat/data directory.")
    return load_dataset("json", data_files={"train": str(train), "eval": str(evaluation)})


def dschat_split_index(data_split: str, phase: int, size: int, seed: int = 1234) -> list[int]:
    """The rows of one phase under ``--data_split`` (e.g. "6,2,2"): proportional slices of a seeded shuffle."""
    weights = [float(s) for s in data_split.split(",")]
    shares = [w / sum(weights) for w in weights]
    bounds = [0]
    for share in shares:
        bounds.append(bounds[-1] + int(round(share * float(size))))
    overshoot = bounds[-1] - size
    bounds = [bounds[0]] + [b - overshoot for b in bounds[1:]]
    shuffled = np.arange(size, dtype=np.uint32)
    np.random.RandomState(seed=seed).shuffle(shuffled)
    return shuffled[bounds[phase - 1]:bounds[phase]].tolist()


def dschat_texts(sample: Mapping[str, Any], phase: int, end_of_conversation: str = "<|endoftext|>") -> tuple | None:
    """What `create_dataset_split` tokenises for one record: phase 1 the prompt and chosen reply, phase 2 both
    sentences of the pair, phase 3 the prompt; None where the record is skipped (a needed field is null)."""
    prompt = " " + sample["prompt"] if sample["prompt"] is not None else None
    chosen = " " + sample["prompt"] + " " + sample["chosen"] if prompt and sample["chosen"] is not None else None
    rejected = " " + sample["prompt"] + " " + sample["rejected"] if prompt and sample["rejected"] is not None else None
    if phase == 1:
        return None if chosen is None else (chosen + end_of_conversation,)
    if phase == 2:
        return None if chosen is None or rejected is None else (chosen + end_of_conversation,
                                                                  rejected + end_of_conversation)
    return None if prompt is None else (prompt,)


# --- OpenRLHF -------------------------------------------------------------------------------------------------------
# OpenRLHF 0.11.2: openrlhf/datasets/reward_dataset.py (`preprocess_data`, `RewardDataset.__getitem__`; train_rm and
# train_dpo), sft_dataset.py (`preprocess_data`, `SFTDataset.__getitem__`; train_sft) and prompts_dataset.py
# (`preprocess_data`; train_ppo_ray). openrlhf/datasets/utils.py `blending_datasets` reads a local .jsonl with
# load_dataset("json", data_files=PATH).


def _openrlhf_close(text: str, eos_token: str) -> str:
    """Every OpenRLHF dataset ends a training sequence so: trailing newlines stripped, then " " + EOS if missing."""
    text = text.rstrip("\n")
    return text if text.endswith(eos_token) else text + " " + eos_token


def openrlhf_reward_texts(data: Mapping[str, Any], apply_chat_template: Callable[..., str], eos_token: str,
                          prompt_key: str = "prompt", chosen_key: str = "chosen",
                          rejected_key: str = "rejected") -> tuple[str, str]:
    """The chosen and rejected sequences of ``--data.prompt_key/chosen_key/rejected_key --data.apply_chat_template``:
    each continuation is the full chat's rendering minus the prompt's (generation prompt on), joined back to it."""
    prompt = apply_chat_template(data[prompt_key], tokenize=False, add_generation_prompt=True)
    chosen = apply_chat_template(data[prompt_key] + data[chosen_key], tokenize=False)[len(prompt):]
    rejected = apply_chat_template(data[prompt_key] + data[rejected_key], tokenize=False)[len(prompt):]
    return _openrlhf_close(prompt + chosen, eos_token), _openrlhf_close(prompt + rejected, eos_token)


def openrlhf_sft_texts(data: Mapping[str, Any], apply_chat_template: Callable[..., str], eos_token: str,
                       input_key: str = "prompt", output_key: str = "completion") -> tuple[str, str]:
    """(prompt, sequence) of ``--data.input_key/output_key --data.apply_chat_template``: the loss starts after the
    prompt's tokens."""
    prompt = apply_chat_template(data[input_key], tokenize=False, add_generation_prompt=True)
    response = apply_chat_template(data[input_key] + data[output_key], tokenize=False)[len(prompt):]
    return prompt, _openrlhf_close(prompt + response, eos_token)


def openrlhf_prompt_text(data: Mapping[str, Any], apply_chat_template: Callable[..., str],
                         input_key: str = "prompt") -> str:
    """The PPO prompt of ``--data.input_key --data.apply_chat_template`` (text without ``<image>`` tags as is)."""
    return apply_chat_template(data[input_key], tokenize=False, add_generation_prompt=True)


# --- ChatLLaMA ------------------------------------------------------------------------------------------------------
# nebuly-ai ChatLLaMA, chatllama/rlhf/actor.py (ActorDataset), reward.py (RewardDataset) and trainer.py
# (ExamplesSampler): each reads its JSON array file whole.


def chatllama_actor(path: Path) -> list[str]:
    """ActorDataset: the text of each entry is ``user_input + completion``, no separator added."""
    return [entry["user_input"] + entry["completion"] for entry in read_json(path)]


def chatllama_reward(path: Path) -> list[tuple[str, float]]:
    """RewardDataset: ``(user_input + completion, score)`` where a falsy score (None, 0) is read as 2.5."""
    return [(entry["user_input"] + entry["completion"], float(entry["score"]) if entry["score"] else 2.5)
            for entry in read_json(path)]


def chatllama_rlhf(path: Path) -> list[str]:
    """ExamplesSampler: the prompts PPO samples, ``user_input`` of each entry."""
    return [entry["user_input"] for entry in read_json(path)]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


# --- LLaMA-Factory --------------------------------------------------------------------------------------------------
# LLaMA-Factory 0.9.5 (hiyouga/LLaMA-Factory), src/llamafactory/data/parser.py (DatasetAttr: defaults and `join` of a
# dataset_info.json entry), converter.py (SharegptDatasetConverter) and processor/{supervised,pairwise,feedback,
# unsupervised}.py (the examples each stage drops). Its wheel pins datasets<=4.0, trl<=0.24 and transformers<=5.6, so it
# cannot be installed beside prefdata's dev dependencies.

LLAMAFACTORY_DEFAULTS = {"formatting": "alpaca", "ranking": False, "messages": "conversations", "system": None,
                         "chosen": None, "rejected": None, "kto_tag": None, "role_tag": "from", "content_tag": "value",
                         "user_tag": "human", "assistant_tag": "gpt", "observation_tag": "observation",
                         "function_tag": "function_call", "system_tag": "system"}
_LLAMAFACTORY_ROLES = {"user_tag": "user", "assistant_tag": "assistant", "observation_tag": "observation",
                       "function_tag": "function", "system_tag": "system"}


_LLAMAFACTORY_GROUPS = {"columns": ("messages", "system", "chosen", "rejected", "kto_tag"),
                        "tags": ("role_tag", "content_tag", *_LLAMAFACTORY_ROLES)}


def llamafactory_attr(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset_info.json entry as DatasetAttr.join reads it: defaults, the entry's formatting and ranking, and when
    it has "columns" / "tags", every key of that group from there (a key the group does not name becomes None)."""
    attr = dict(LLAMAFACTORY_DEFAULTS)
    attr.update(formatting=entry.get("formatting", "alpaca"), ranking=entry.get("ranking", False))
    for group, keys in _LLAMAFACTORY_GROUPS.items():
        if group in entry:
            attr.update({key: entry[group].get(key) for key in keys})
    return attr


def llamafactory_sharegpt(example: Mapping[str, Any], attr: Mapping[str, Any]) -> dict[str, Any]:
    """SharegptDatasetConverter: ``{"_prompt", "_response", "_system"}``; both lists empty for an example it calls
    broken (a role out of the human/gpt alternation, or a message count that does not fit the dataset's kind)."""
    tag_role = {attr[tag]: role for tag, role in _LLAMAFACTORY_ROLES.items()}
    accepted = ((attr["user_tag"], attr["observation_tag"]), (attr["assistant_tag"], attr["function_tag"]))
    messages = example[attr["messages"]]
    if attr["system_tag"] and messages and messages[0][attr["role_tag"]] == attr["system_tag"]:
        system, messages = messages[0][attr["content_tag"]], messages[1:]
    else:
        system = example[attr["system"]] if attr["system"] else ""
    aligned, broken = [], False
    for i, message in enumerate(messages):
        if message[attr["role_tag"]] not in accepted[i % 2]:
            broken = True
            break
        aligned.append({"role": tag_role[message[attr["role_tag"]]], "content": message[attr["content_tag"]]})
    if (len(aligned) % 2 != 0) != bool(attr["ranking"]):
        broken = True
    empty = {"role": "assistant", "content": ""}
    if broken:
        prompt, response = [], []
    elif attr["kto_tag"] and isinstance(example[attr["kto_tag"]], bool):
        prompt, response = aligned[:-1], aligned[-1:]
        response = response + [empty] if example[attr["kto_tag"]] else [empty] + response
    elif attr["ranking"] and isinstance(example[attr["chosen"]], dict) and isinstance(example[attr["rejected"]], dict):
        prompt = aligned
        response = [{"role": tag_role[example[side][attr["role_tag"]]], "content": example[side][attr["content_tag"]]}
                    for side in (attr["chosen"], attr["rejected"])]
    else:
        prompt, response = aligned[:-1], aligned[-1:]
    return {"_prompt": prompt, "_response": response, "_system": system}


def llamafactory_keeps(converted: Mapping[str, Any], stage: str) -> bool:
    """Whether a stage's processor keeps the converted example: sft one reply, rm/dpo two (chosen, rejected), kto two
    (the reply and an empty one), ppo any; each after a prompt of odd length (ending with the user)."""
    prompt_ok = len(converted["_prompt"]) % 2 == 1
    needed = {"sft": lambda n: n == 1, "rm": lambda n: n >= 2, "dpo": lambda n: n >= 2, "kto": lambda n: n >= 2,
              "ppo": lambda n: True}[stage]
    return prompt_ok and needed(len(converted["_response"]))
