"""Orca DPO pairs (Intel/orca_dpo_pairs and its copies): ``system, question, chosen, rejected``, usually a CSV.

Its own format because ``chosen``/``rejected`` alone would read as HH-RLHF transcripts (the implicit-prompt shape),
which these plain replies are not. An empty ``system`` cell adds no system message.
"""

from __future__ import annotations

from typing import Any

from prefdata.contract.row import make_row
from prefdata.formats.common import Format, Record, leftover_meta, optional_text, reply, require, text, user_prompt


def parse(record: Record, source: str) -> dict[str, Any]:
    prompt = user_prompt(text(record, "question"), optional_text(record, "system"))
    return make_row(prompt, reply(require(record, "chosen"), "chosen"), reply(require(record, "rejected"), "rejected"),
                    source=source, meta=leftover_meta(record, {"system", "question", "chosen", "rejected"}))


FORMATS = [
    Format("orca", "preference", frozenset({"question", "chosen", "rejected"}), parse,
           "Orca DPO pairs: optional system, question, chosen, rejected strings", schema="orca"),
]
