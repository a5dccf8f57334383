"""One row of one phase in each export format: pure row -> items functions, no files.

A converter returns a `Conversion`: the items for the split's main file, or for its side file (``unpaired``: labelled
replies, in a format that has a shape for them), or the reason the format cannot express the row at all
(`LEFT_OUT`), which the export counts instead of writing something that means less (or something else).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from prefdata.contract.phases import serves
from prefdata.contract.render import render
from prefdata.contract.row import reply_messages

# Why a format leaves a row out (the export manifest counts them under these names).
LEFT_OUT = {
    "unpaired": "a labelled reply without a pair (KTO); the format has no shape for it",
    "tool_calls": "a tool call or tool result; the format has no shape for it (TRL: use --container jsonl)",
    "turns": "turns LLaMA-Factory cannot read (not alternating, or a ranked reply of several messages)",
}
UNPAIRED = "unpaired"  # the side file a split's unpaired rows go to, where the format has a shape for them
# ChatLLaMA's converters (artifacts/download_dataset.py, AnthropicRLHF and StanfordNLPSHPDataset.reformat_dataset) end
# user_input with this marker and start completion with "Assistant: "; its ActorDataset and RewardDataset read
# user_input + completion with no separator between them.
CHATLLAMA_INPUT_END = "\n\n##\n\n"
CHATLLAMA_REPLY_START = "Assistant: "
# ChatLLaMA's RewardDataset reads a falsy score (0, None) as 2.5, so an unscored pair gets +1 / -1 (both truthy).
CHATLLAMA_UNSCORED = (1.0, -1.0)


class Conversion(NamedTuple):
    """What one row becomes: ``items`` for the main file (``part`` "") or a side file, or ``left_out`` (a reason)."""

    items: list[dict[str, Any]]
    part: str = ""
    left_out: str | None = None


SKIPPED = Conversion([])  # the phase does not use the row (a prompt without a reply in sft, say)


def _left_out(reason: str) -> Conversion:
    return Conversion([], left_out=reason)


def has_tool_calls(row: Mapping[str, Any]) -> bool:
    messages = [*row["prompt"], *(reply_messages(row, "chosen") or []), *(reply_messages(row, "rejected") or [])]
    return any(m["role"] == "tool" or m.get("tool_calls") for m in messages)


def _label(row: Mapping[str, Any]) -> bool | None:
    return row.get("label")


def _reply_text(row: Mapping[str, Any], side: str) -> str:
    """A continuation as the text that follows the prompt in the dschat rendering (a plain reply as is)."""
    turns = row.get(f"{side}_turns")
    if turns is None:
        return row[side]
    head = render(row["prompt"], template="dschat")
    return render(row["prompt"], turns, template="dschat")[len(head) + 1:]


def _trl_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates read them: set keys only, ``tool_calls`` as the OpenAI list (stored as JSON text)."""
    out = []
    for m in messages:
        message = {key: value for key, value in m.items() if value is not None}
        if "tool_calls" in message:
            message["tool_calls"] = json.loads(message["tool_calls"])
        out.append(message)
    return out


def to_trl(row: Mapping[str, Any], phase: str) -> Conversion:
    """TRL conversational formats with an explicit prompt: preference (rm), prompt-completion (sft), prompt-only (ppo);
    an unpaired row in rm is TRL's unpaired preference format (prompt, completion, label) in the side file."""
    prompt = _trl_messages(row["prompt"])
    label = _label(row)
    if phase == "rm" and label is not None:
        reply = _trl_messages(reply_messages(row, "chosen" if label else "rejected"))
        return Conversion([{"prompt": prompt, "completion": reply, "label": label}], UNPAIRED)
    if not serves(row, phase):
        return SKIPPED
    if phase == "rm":
        return Conversion([{"prompt": prompt, "chosen": _trl_messages(reply_messages(row, "chosen")),
                            "rejected": _trl_messages(reply_messages(row, "rejected"))}])
    if phase == "sft":
        return Conversion([{"prompt": prompt, "completion": _trl_messages(reply_messages(row, "chosen"))}])
    return Conversion([{"prompt": prompt}])


def _plain_only(row: Mapping[str, Any], phase: str) -> Conversion | None:
    """For formats of flat text: the reason to leave ``row`` out, SKIPPED when the phase does not use it, else None."""
    if phase == "rm" and _label(row) is not None:
        return _left_out("unpaired")
    if not serves(row, phase):
        return SKIPPED
    if has_tool_calls(row):
        return _left_out("tool_calls")
    return None


def to_dschat(row: Mapping[str, Any], phase: str) -> Conversion:
    """DeepSpeed-Chat `local/jsonfile`: prompt ends with "Assistant:"; DS-Chat itself puts " " before each reply."""
    refused = _plain_only(row, phase)
    if refused is not None:
        return refused
    return Conversion([{"prompt": render(row["prompt"], template="dschat"),
                        "chosen": _reply_text(row, "chosen") if phase != "ppo" else None,
                        "rejected": _reply_text(row, "rejected") if phase == "rm" else None}])


def chatllama_input(prompt: Sequence[Mapping[str, str]]) -> str:
    """ChatLLaMA's ``user_input``: the conversation as "Human: …\\n\\nAssistant: …" (the dschat rendering without its
    closing "Assistant:"), then ChatLLaMA's own end marker: every prompt, one turn or many, rendered the same way."""
    return render(prompt, template="dschat").removesuffix("\n\nAssistant:") + CHATLLAMA_INPUT_END


def chatllama_scores(row: Mapping[str, Any]) -> tuple[float, float]:
    """The pair's scores as ChatLLaMA keeps them: chosen above rejected and neither falsy.

    A pair's own scores are kept when they order it (a 0 among them shifts both up, keeping the gap); an unscored
    pair, or one whose scores contradict its label, gets `CHATLLAMA_UNSCORED`.
    """
    chosen, rejected = row.get("chosen_score"), row.get("rejected_score")
    if chosen is None or rejected is None or chosen <= rejected:
        return CHATLLAMA_UNSCORED
    shift = 0.0 if 0.0 not in (chosen, rejected) else 2.0 if -1.0 in (chosen, rejected) else 1.0
    return chosen + shift, rejected + shift


def to_chatllama(row: Mapping[str, Any], phase: str) -> Conversion:
    """actor: user_input/completion; reward: one entry per reply with its score; rlhf: user_input."""
    refused = _plain_only(row, phase)
    if refused is not None:
        return refused
    user_input = chatllama_input(row["prompt"])
    if phase == "sft":
        return Conversion([{"user_input": user_input,
                            "completion": CHATLLAMA_REPLY_START + _reply_text(row, "chosen")}])
    if phase == "rm":
        chosen_score, rejected_score = chatllama_scores(row)
        return Conversion([
            {"user_input": user_input, "completion": CHATLLAMA_REPLY_START + _reply_text(row, "chosen"),
             "score": chosen_score},
            {"user_input": user_input, "completion": CHATLLAMA_REPLY_START + _reply_text(row, "rejected"),
             "score": rejected_score}])
    return Conversion([{"user_input": user_input}])


# ShareGPT roles as LLaMA-Factory names them (its data/README.md: human and observation at odd positions, gpt and
# function_call at even ones; the system prompt in the `system` column).
_SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "tool": "observation"}
_ASKS, _ANSWERS = frozenset({"human", "observation"}), frozenset({"gpt", "function_call"})


def _function_call(tool_calls: str) -> dict[str, str]:
    """OpenAI tool calls as one LLaMA-Factory ``function_call`` turn: {"name", "arguments"} (arguments as an object
    when they are JSON), a list of them for parallel calls."""
    calls = []
    for call in json.loads(tool_calls):
        arguments = call["function"]["arguments"]
        with contextlib.suppress(ValueError):  # arguments that are not JSON stay the text they are
            arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
        calls.append({"name": call["function"]["name"], "arguments": arguments})
    return {"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)}


def _sharegpt_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]] | None:
    """Messages as ShareGPT turns; None when one cannot be one turn (an assistant message with both text and tool
    calls would be two answers in a row)."""
    turns = []
    for m in messages:
        if m.get("tool_calls"):
            if m["content"]:
                return None
            turns.append(_function_call(m["tool_calls"]))
        else:
            turns.append({"from": _SHAREGPT_FROM[m["role"]], "value": m["content"]})
    return turns


def _alternates(turns: Sequence[Mapping[str, str]]) -> bool:
    """LLaMA-Factory's rule: asks (human, observation) at odd positions, answers (gpt, function_call) at even ones."""
    return all(turn["from"] in (_ASKS if i % 2 == 0 else _ANSWERS) for i, turn in enumerate(turns))


def to_sharegpt(row: Mapping[str, Any], phase: str) -> Conversion:
    """LLaMA-Factory ShareGPT: sft the conversation ending with the gpt reply; rm ``conversations`` + ``chosen`` /
    ``rejected`` as one message object each (ranking); an unpaired row the conversation + reply with ``kto_tag`` in the
    side file; ppo the conversation and an empty gpt answer. ``system`` is on every item ("" for none), as LLaMA-Factory reads a
    column."""
    label = _label(row)
    if (phase != "rm" or label is None) and not serves(row, phase):
        return SKIPPED
    prompt = list(row["prompt"])
    system = prompt.pop(0)["content"] if prompt and prompt[0]["role"] == "system" else ""
    sides = {"rm": ["chosen", "rejected"] if label is None else ["chosen" if label else "rejected"],
             "sft": ["chosen"], "ppo": []}[phase]
    reply_sides = [reply_messages(row, side) for side in sides]
    conversation = _sharegpt_turns(prompt)
    answers = [_sharegpt_turns(side) for side in reply_sides]
    if conversation is None or None in answers or not all(
            _alternates(conversation + answer) for answer in answers or [[]]):
        return _left_out("turns")
    item: dict[str, Any] = {"conversations": conversation, "system": system}
    if phase == "rm" and label is not None:
        return Conversion([{**item, "conversations": conversation + answers[0], "kto_tag": label}], UNPAIRED)
    if phase == "rm":
        if any(len(answer) != 1 for answer in answers):
            return _left_out("turns")
        return Conversion([{**item, "chosen": answers[0][0], "rejected": answers[1][0]}])
    if phase == "sft":
        item["conversations"] = conversation + answers[0]
    else:  # ppo: LLaMA-Factory reads a prompt as a conversation with an empty last answer, as it fills one itself
        item["conversations"] = conversation + [{"from": "gpt", "value": ""}]
    return Conversion([item])


def canonical(row: Mapping[str, Any], phase: str) -> Conversion:
    """jsonl / parquet: the stored row as is, whatever the phase (a canonical copy loses nothing)."""
    return Conversion([dict(row)])


CONVERTERS = {"trl": to_trl, "dschat": to_dschat, "chatllama": to_chatllama, "sharegpt": to_sharegpt,
              "jsonl": canonical, "parquet": canonical}
