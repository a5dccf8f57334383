"""Direct preference optimisation from log-probabilities: the DPO family (sigmoid DPO, IPO, SimPO) and KTO as pure
tensor functions, the collators that feed them, and the one pass that computes a frozen reference's log-probs.

Every loss takes *summed* reply log-probs and reply token counts per example (``[B]`` tensors) and returns
``(per-example losses, chosen rewards, rejected rewards)``; the rewards are the implicit ones each method optimises
(``beta`` x log-ratio, or ``beta`` x mean log-prob for SimPO), logged as preference accuracy and margin. The formulas
follow the papers and TRL's ``DPOTrainer``/``CPOTrainer``/``KTOTrainer`` (whose results users compare with):

- DPO (Rafailov et al. 2023), with conservative label smoothing ``eps`` (cDPO): ``z = beta * ((pc - rc) - (pr - rr))``,
  ``loss = -(1 - eps) * logsigmoid(z) - eps * logsigmoid(-z)``.
- IPO (Azar et al. 2023) on length-averaged log-probs, as TRL: ``h = (pc/nc - rc/nc) - (pr/nr - rr/nr)``,
  ``loss = (h - 1 / (2 * beta))^2``.
- SimPO (Meng et al. 2024), reference-free: ``z = beta * (pc/nc - pr/nr) - gamma``, smoothed like DPO.
- KTO (Ethayarajh et al. 2024): ``desirable: w_d * (1 - sigmoid(beta * (logratio - z0)))``, ``undesirable:
  w_u * (1 - sigmoid(beta * (z0 - logratio)))`` with ``z0`` the detached, non-negative batch estimate of
  KL(policy || reference) from replies paired with the wrong prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from trainers.components.collate import IGNORE_INDEX, collate_sft
from trainers.components.packing import model_inputs, sequence_sums

Tensor = Any  # torch.Tensor; torch is imported only when a function runs
LOSSES = ("dpo", "ipo", "simpo")
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "simpo": 2.0, "kto": 0.1}


def sequence_logprobs(logits: Tensor, labels: Tensor, sequence_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Summed log p of each row's labelled tokens (labels ``-100`` are skipped) and how many there are: ``([B], [B])``;
    of each packed sequence instead when the batch is packed (``sequence_index``, `trainers.components.packing`).

    ``logits[:, t]`` predicts ``labels[:, t + 1]``, the same shift as the causal-LM loss of SFT."""
    import torch

    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE_INDEX
    picked = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    if sequence_index is None:
        return (picked * mask).sum(-1), mask.sum(-1)
    index, count = sequence_index[:, 1:], int(sequence_index.max()) + 1
    return sequence_sums(picked * mask, index, count), sequence_sums(mask.long(), index, count)


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, *,
             beta: float, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Sigmoid DPO on summed log-probs; ``label_smoothing`` is the assumed share of flipped labels (cDPO)."""
    import torch.nn.functional as F

    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    z = chosen_rewards - rejected_rewards
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def ipo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             chosen_tokens: Tensor, rejected_tokens: Tensor, *, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """IPO: the squared distance of the length-averaged log-ratio margin from ``1 / (2 * beta)`` (no saturation, so
    a deterministic preference cannot push the margin to infinity)."""
    chosen_ratio = (policy_chosen - ref_chosen) / chosen_tokens.clamp(min=1)
    rejected_ratio = (policy_rejected - ref_rejected) / rejected_tokens.clamp(min=1)
    losses = (chosen_ratio - rejected_ratio - 1 / (2 * beta)) ** 2
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def simpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, chosen_tokens: Tensor, rejected_tokens: Tensor, *,
               beta: float, gamma: float, label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """SimPO: no reference; the reward is ``beta`` x the mean log-prob of the reply, and chosen must beat rejected by
    the target margin ``gamma``."""
    import torch.nn.functional as F

    chosen_rewards = beta * policy_chosen / chosen_tokens.clamp(min=1)
    rejected_rewards = beta * policy_rejected / rejected_tokens.clamp(min=1)
    z = chosen_rewards - rejected_rewards - gamma
    losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def kto_kl_estimate(policy_mismatched: Tensor, ref_mismatched: Tensor,
                    reduce: Callable[[list[float]], list[float]] = list) -> Tensor:
    """KTO's reference point ``z0``: the mean log-ratio of replies under prompts they do not answer, at least 0 and
    detached (a baseline, not something to optimise); ``reduce`` sums ``[total, count]`` over the ranks."""
    import torch

    logratio = (policy_mismatched - ref_mismatched).detach()
    total, count = reduce([float(logratio.sum()), float(len(logratio))])
    return torch.tensor(max(total / max(count, 1.0), 0.0), device=logratio.device)


def kto_loss(policy: Tensor, reference: Tensor, desirable: Tensor, kl: Tensor, *, beta: float,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-example KTO losses of labelled replies (``desirable`` a bool ``[B]``) and their rewards
    ``beta * (log p - log p_ref)``. The weights rebalance unequal numbers of desirable and undesirable replies."""
    import torch

    logratio = policy - reference
    gained = 1 - torch.sigmoid(beta * (logratio - kl))
    lost = 1 - torch.sigmoid(beta * (kl - logratio))
    losses = torch.where(desirable, desirable_weight * gained, undesirable_weight * lost)
    return losses, (beta * logratio).detach()


def preference_loss(loss: str, policy: tuple[Tensor, Tensor], reference: tuple[Tensor, Tensor] | None,
                    tokens: tuple[Tensor, Tensor], *, beta: float, label_smoothing: float, gamma: float
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """The ``--loss`` of `trainers.recipes.dpo` on (chosen, rejected) log-probs; ``reference`` is None for SimPO."""
    if loss == "simpo":
        return simpo_loss(*policy, *tokens, beta=beta, gamma=gamma, label_smoothing=label_smoothing)
    if reference is None:
        raise ValueError(f"--loss {loss} needs reference log-probs")
    if loss == "ipo":
        return ipo_loss(*policy, *reference, *tokens, beta=beta)
    if loss == "dpo":
        return dpo_loss(*policy, *reference, beta=beta, label_smoothing=label_smoothing)
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


# ------------------------------------------------------------------------------------------------------ batches


class Indexed:
    """A token cache whose examples carry their index, so a batch can look up what was computed once per example."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**self.dataset[i], "index": i}


class Mismatched(Indexed):
    """KTO examples, each also carrying its prompt with the reply of the next example (``i + 1`` modulo the set): the
    mismatched pairs whose log-ratio estimates KL(policy || reference). The pairing is fixed, so their reference
    log-probs are computed once too."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        import numpy as np

        example = super().__getitem__(i)
        other = self.dataset[(i + 1) % len(self.dataset)]
        prompt = example["input_ids"][: int(example["prompt_tokens"])]
        reply = other["input_ids"][int(other["prompt_tokens"]) :]
        return {**example, "kl_input_ids": np.concatenate([prompt, reply]), "kl_prompt_tokens": len(prompt)}


def collate_preference_pairs(examples: list[dict], pad_id: int, rows: Callable[..., dict] = collate_sft) -> dict[str, Any]:
    """Chosen rows then rejected rows of ``rm`` pairs in one right-padded batch (``rows=collate_packed_sft``: packed),
    labels ``-100`` outside the replies, and each pair's ``index``."""
    import torch

    sides = [{"input_ids": e[f"{side}_input_ids"], "prompt_tokens": e[f"{side}_prompt_tokens"]}
             for side in ("chosen", "rejected") for e in examples]
    batch = rows(sides, pad_id)
    batch["index"] = torch.tensor([int(e["index"]) for e in examples])
    return batch


def collate_labelled(examples: list[dict], pad_id: int) -> dict[str, Any]:
    """KTO: the labelled replies then their mismatched pairs (`Mismatched`) in one batch, ``desirable`` and ``index``."""
    import torch

    rows = [{"input_ids": e["input_ids"], "prompt_tokens": e["prompt_tokens"]} for e in examples]
    rows += [{"input_ids": e["kl_input_ids"], "prompt_tokens": e["kl_prompt_tokens"]} for e in examples]
    batch = collate_sft(rows, pad_id)
    batch["desirable"] = torch.tensor([bool(e["label"]) for e in examples])
    batch["index"] = torch.tensor([int(e["index"]) for e in examples])
    return batch


def batch_logprobs(forward: Callable[..., Any], batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Summed reply log-probs and reply token counts of every row (or packed sequence) of a batch, one forward pass."""
    if "sequence_index" not in batch:  # padded
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return sequence_logprobs(logits, batch["labels"])
    inputs = model_inputs(batch)  # packed: position ids, and no KV cache (which would unmask the packed sequences)
    labels = inputs.pop("labels")
    return sequence_logprobs(forward(**inputs).logits, labels, batch["sequence_index"])


def reference_logprobs(forward: Callable[..., Any], batches: Iterable[dict[str, Any]], size: int,
                       reduce: Callable[[Tensor], Tensor]) -> Tensor:
    """``[size, K]`` reference log-probs, computed once: row ``i`` holds the K rows of example ``i`` in a batch (a
    pair's chosen and rejected; a KTO reply and its mismatched pair).

    Each rank scores its own examples; ``reduce`` sums a tensor over the ranks, so every rank ends with all of them (an
    example the sampler gave to two ranks, to even out the shards, is averaged back)."""
    import torch

    totals = counts = None
    with torch.no_grad():
        for batch in batches:
            logps = batch_logprobs(forward, batch)[0]
            per_example = logps.view(-1, len(batch["index"])).T.double()  # [B, K]
            if totals is None:
                totals = torch.zeros(size, per_example.shape[1], dtype=torch.float64, device=logps.device)
                counts = torch.zeros(size, 1, dtype=torch.float64, device=logps.device)
            index = batch["index"].to(logps.device)
            totals.index_add_(0, index, per_example)
            counts.index_add_(0, index, torch.ones(len(index), 1, dtype=torch.float64, device=logps.device))
    if totals is None:
        raise ValueError("no batches to compute reference log-probs on")
    return (reduce(totals) / reduce(counts).clamp(min=1)).float()
