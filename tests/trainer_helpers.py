"""Builders for the trainer tests: authored split directories, a tokenizer trained on them, a free port.

All text here is written for these tests. Each corpus carries a signal a tiny model can learn, so the tests check that
training really learns (falling loss, pair accuracy, rising reward) rather than that it merely runs.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import torch

from prefdata.contract.row import make_row, make_unsup_row
from prefdata.storage.dataset import DatasetWriter

SPLITS = ("sft_train", "sft_eval", "rm_train", "rm_eval", "ppo_train", "ppo_eval")
ANIMALS = ["cat", "dog", "fox", "owl", "bee", "cow", "hen", "eel", "elk", "yak", "ant", "bat"]
COLOURS = ["red", "blue", "green", "grey", "gold", "pink", "black", "white"]
PLACES = ["barn", "pond", "hill", "field", "wood", "river", "garden", "cave"]
FILLER = ["maybe", "today", "really", "quite", "often", "later", "there", "again", "soon", "still"]
GOOD, BAD = "gladly", "whatever"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    """The environment of a child `prefdata`/`torchrun`: this checkout first on the path, no inherited rank."""
    repo = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")])
    return env


def single_process_env(monkeypatch) -> None:
    """A world of one for in-process DeepSpeed (kept if a process group already exists in this test process)."""
    if "MASTER_PORT" not in os.environ:
        monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
        monkeypatch.setenv("MASTER_PORT", str(free_port()))
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "1")
        monkeypatch.setenv("LOCAL_RANK", "0")


def _fact(rng: random.Random) -> tuple[str, str]:
    """A question and its answer, drawn from a fixed, learnable world: each animal has one colour and one home."""
    i = rng.randrange(len(ANIMALS))
    animal, colour, place = ANIMALS[i], COLOURS[i % len(COLOURS)], PLACES[(i * 3) % len(PLACES)]
    if rng.random() < 0.5:
        return f"What colour is the {animal} ?", f"The {animal} is {colour} ."
    return f"Where does the {animal} live ?", f"The {animal} lives in the {place} ."


def tag(k: int) -> str:
    """A number spelled with the filler words (keeps prompts distinct without growing the vocabulary)."""
    digits = []
    while True:
        k, d = divmod(k, len(FILLER))
        digits.append(FILLER[d])
        if k == 0:
            return " ".join(digits)


def rows(n: int, seed: int, margin: float | None = None) -> list[dict]:
    """Pairs whose chosen reply answers politely (starts with GOOD) and whose rejected reply is dismissive (BAD); with
    ``margin``, each pair's ``meta.margin`` (what ``train reward --use-margin`` subtracts)."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        question, answer = _fact(rng)
        noise = " ".join(rng.choice(FILLER) for _ in range(rng.randrange(0, 3)))
        prompt = [{"role": "user", "content": f"{question} {noise} ( {tag(k)} )".replace("  ", " ")}]
        chosen = f"{GOOD} , {answer}"
        rejected = f"{BAD} , {rng.choice(FILLER)} {rng.choice(FILLER)} ."
        meta = {"margin": margin} if margin is not None else None
        out.append(make_row(prompt, chosen, rejected, source="test/trainers", meta=meta))
    return out


def write_split_dir(path: Path, sizes: dict[str, int] | None = None, seed: int = 0, margin: float | None = None) -> Path:
    """A `prefdata split`-shaped directory written with the real DatasetWriter (one row per record)."""
    sizes = sizes or {"sft_train": 192, "sft_eval": 48, "rm_train": 192, "rm_eval": 64, "ppo_train": 64, "ppo_eval": 16}
    with DatasetWriter(path, command="test-split", options={"seed": seed}) as writer:
        for i, split in enumerate(SPLITS):
            for row in rows(sizes.get(split, 0), seed * 100 + i, margin):
                writer.count_in()
                writer.write(row, split)
    return path


def write_unsup_dir(path: Path, n: int = 32, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with DatasetWriter(path, command="test-unsup", schema_id="prefdata.unsup/1") as writer:
        for k in range(n):
            writer.count_in()
            words = " ".join(rng.choice(ANIMALS + PLACES + FILLER) for _ in range(rng.randrange(4, 20)))
            writer.write(make_unsup_row(f"{words} . {tag(k)}", source="test/unsup"), "train")
    return path


def train_tokenizer(path: Path, chat_template: bool = False, extra_text: list[str] | None = None):
    """A word-level tokenizer over the test vocabulary, saved as a `PreTrainedTokenizerFast` with EOS and pad."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(ANIMALS + COLOURS + PLACES + FILLER + [GOOD, BAD])]
    corpus += ["Human : Assistant : What colour is the Where does live The lives in ( ) , . ? user assistant system"]
    corpus += extra_text or []
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = (
            "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
            "{% if add_generation_prompt %}assistant : {% endif %}"
        )
    fast.save_pretrained(path)
    return fast


class TargetTokenReward(torch.nn.Module):
    """Rule-based reward model: the value at position t counts the target token in the sequence up to t."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target

    def forward(self, input_ids, attention_mask=None, position_ids=None):
        return ((input_ids == self.target).float() * attention_mask).cumsum(-1)
