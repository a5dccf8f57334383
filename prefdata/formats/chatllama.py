"""ChatLLaMA's three artifact formats (JSON arrays of objects).

actor ``{user_input, completion}`` is a demonstration; reward ``{user_input, completion, score}`` is a scored reply
(pairs are made from replies to the same prompt at split time); rlhf ``{user_input}`` is a prompt for PPO.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.row import make_row
from prefdata.formats.common import Format, Record, leftover_meta, score, text, user_prompt


def parse_actor(record: Record, source: str) -> dict[str, Any]:
    used = {"user_input", "completion"}
    return make_row(user_prompt(text(record, "user_input")), text(record, "completion"), source=source,
                    meta=leftover_meta(record, used))


def parse_reward(record: Record, source: str) -> dict[str, Any]:
    used = {"user_input", "completion", "score"}
    return make_row(user_prompt(text(record, "user_input")), text(record, "completion"), source=source,
                    chosen_score=score(record, "score", required=True), meta=leftover_meta(record, used))


def parse_rlhf(record: Record, source: str) -> dict[str, Any]:
    return make_row(user_prompt(text(record, "user_input")), source=source,
                    meta=leftover_meta(record, {"user_input"}))


FORMATS = [
    Format("chatllama-actor", "preference", frozenset({"user_input", "completion"}), parse_actor,
           "ChatLLaMA actor data: user_input, completion (a demonstration)", schema="actor"),
    Format("chatllama-reward", "preference", frozenset({"user_input", "completion", "score"}), parse_reward,
           "ChatLLaMA reward data: user_input, completion, score (a scored reply)", number_fields=frozenset({"score"}),
           schema="reward"),
    Format("chatllama-rlhf", "preference", frozenset({"user_input"}), parse_rlhf,
           "ChatLLaMA rlhf data: user_input (a prompt for PPO)", schema="rlhf"),
]
