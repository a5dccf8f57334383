"""A `prefdata train reward` checkpoint as a ranker: scores (prompt, answer) pairs locally, in batches, no server needed.

`prefdata rank --by reward-model --reward-model DIR` uses it (best-of-N without a judge). The text of each pair is
built exactly as the reward trainer builds it (`contract.render` with the same template, prompt and reply tokenised
apart, EOS appended: `tokens._Encoder`); an over-long pair keeps its end (left truncation), where the reply and the
EOS whose value is the score sit. The score is the value head's output at the last real token, as in training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainers.components import models
from trainers.components.collate import collate_sft
from trainers.components.tokens import TokenizeSpec, _Encoder, _fit
from trainers.runtime.options import quiet_libraries

WEIGHT_FILES = ("config.json", "*.safetensors", "*.bin")  # what makes the scores: the sha256 recorded per ranking


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 over the checkpoint's config and weight files (name and bytes, in name order)."""
    digest = hashlib.sha256()
    files = sorted({f for pattern in WEIGHT_FILES for f in Path(path).glob(pattern) if f.is_file()})
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


class RewardModelScorer:
    """Loads the checkpoint once; `score` runs it under ``torch.no_grad`` on length-sorted batches (less padding)."""

    def __init__(self, path: str | Path, *, batch_size: int = 16, template: str = "dschat",
                 max_seq_len: int = 512, quiet: bool = False) -> None:
        import torch

        if quiet:  # `rank --quiet`: no weight-loading bars or library chatter
            quiet_libraries()
        self.path = str(path)
        self.batch_size = max(1, batch_size)
        self.spec = TokenizeSpec("rm", template, max_seq_len, truncation="left")
        self.tokenizer = models.load_tokenizer(None, self.path)
        self.model = models.load_reward_model(self.path, self.tokenizer)
        self.model.eval()
        self.encoder = _Encoder(self.tokenizer, self.spec)
        self._torch = torch

    def describe(self) -> dict[str, Any]:
        return {"reward_model": self.path, "reward_model_sha256": checkpoint_sha256(self.path),
                "template": self.spec.template, "max_seq_len": self.spec.max_seq_len}

    def token_ids(self, items: Sequence[tuple[list[dict[str, str]], str]]) -> list[list[int]]:
        """The tokens the reward trainer would build for each (prompt, answer), cut to ``max_seq_len`` from the left."""
        prompts = [self.encoder.render(prompt) for prompt, _ in items]
        fulls = [self.encoder.render(prompt, answer) for prompt, answer in items]
        encoded = self.encoder.encode_replies(prompts, fulls)
        return [_fit(ids, n_prompt, self.spec.max_seq_len, "left")[0] for ids, n_prompt in encoded]

    def score(self, items: Sequence[tuple[list[dict[str, str]], str]]) -> list[float]:
        sequences = self.token_ids(items)
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        scores = [0.0] * len(sequences)
        with self._torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                chosen = order[start:start + self.batch_size]
                batch = collate_sft([{"input_ids": sequences[i]} for i in chosen], self.tokenizer.pad_token_id)
                values = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                for i, value in zip(chosen, models.last_token_scores(values, batch["attention_mask"]).tolist()):
                    scores[i] = float(value)
        return scores
