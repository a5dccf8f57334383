"""The three InstructGPT phases and which row kinds serve each: the one definition split, export, stats and the
trainers use.

A phase is ``sft`` (phase 1, demonstrations), ``rm`` (phase 2, preference learning: a reward model or DPO on pairs,
KTO on unpaired rows) or ``ppo`` (phase 3, prompts). `prefdata split` writes each phase as two splits, ``<phase>_train``
and ``<phase>_eval``. What a row serves follows from its kind (`prefdata.contract.row.row_kind`): a pair serves all
three phases (its prompt + chosen reply is a demonstration, its prompt a PPO prompt); a demonstration or a lone scored
row serves sft; a prompt-only row serves ppo; an unpaired (labelled) row goes to rm, where only the formats that
express it (TRL unpaired, LLaMA-Factory ``kto_tag``) write it. An unpaired row never serves sft: an undesirable reply
is no demonstration, and a desirable one was labelled, not written as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefdata.contract.errors import PrefdataError
from prefdata.contract.row import PREFERENCE_SCHEMA_ID, PREFERENCE_SCHEMA_IDS, RowKind, has_reply

PHASES = ("sft", "rm", "ppo")
PARTS = ("train", "eval")
SPLITS = tuple(f"{phase}_{part}" for phase in PHASES for part in PARTS)

# The phases `prefdata split` may assign a row of each kind to. Narrower than `serves`: a demonstration has a prompt
# PPO could read, but it is kept for sft, where it is scarce.
SERVES: Mapping[RowKind, frozenset[str]] = {
    "pair": frozenset(PHASES),
    "demonstration": frozenset({"sft"}),
    "scored": frozenset({"sft"}),
    "prompt_only": frozenset({"ppo"}),
    "unpaired": frozenset({"rm"}),
}
# The replies (as text or turns: `has_reply`) a row must have to be used in each phase, in the order a consumer reads
# them; and an unpaired row (``label`` set) serves no phase that reads replies as a pair or as a demonstration.
NEEDS: Mapping[str, tuple[str, ...]] = {"sft": ("chosen",), "rm": ("chosen", "rejected"), "ppo": ()}


def phase_splits(phase: str) -> tuple[str, str]:
    """``(<phase>_train, <phase>_eval)``."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; choose one of {', '.join(PHASES)}")
    return f"{phase}_train", f"{phase}_eval"


def phase_of_split(name: str) -> str | None:
    """The phase a split written by `prefdata split` feeds (``rm_eval`` -> ``rm``); None for any other name."""
    phase, _, part = name.partition("_")
    return phase if phase in PHASES and part in PARTS else None


def serves(row: Mapping[str, Any], phase: str) -> bool:
    """Whether ``row`` has what ``phase`` reads (`NEEDS`: a pair's chosen reply serves sft, any row's prompt ppo):
    what export writes and stats counts for a split, whichever kinds `prefdata split` put there (`SERVES`).

    An unpaired row serves ppo only: its one reply is neither a demonstration nor a pair (rm formats that express
    unpaired rows test `row_kind(row) == "unpaired"` themselves)."""
    if NEEDS[phase] and row.get("label") is not None:
        return False
    return all(has_reply(row, side) for side in NEEDS[phase])


# Phases from the one that needs the most of a row to the one that needs the least: rm, sft, ppo.
BY_NEED = tuple(sorted(PHASES, key=lambda phase: -len(NEEDS[phase])))


def phase_of_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """The phase a split not made by `prefdata split` feeds: the most demanding one all its rows serve (all pairs or
    unpaired rows: rm; all with a reply: sft; else ppo, also for no rows)."""
    rows = list(rows)
    return next((phase for phase in BY_NEED if rows and all(_feeds(row, phase) for row in rows)), BY_NEED[-1])


def _feeds(row: Mapping[str, Any], phase: str) -> bool:
    """`serves`, and an unpaired row feeds rm (`SERVES`), where the formats that express it read it."""
    return serves(row, phase) or (phase == "rm" and row.get("label") is not None)




def require_preference_rows(schema_id: str, consumer: str, directory: str) -> None:
    """Phases (and the chat formats built on them) read prompts and replies: refuse plain-text rows up front, in one
    line, rather than fail on the first row's missing prompt."""
    if schema_id not in PREFERENCE_SCHEMA_IDS:
        raise PrefdataError(f"holds {schema_id} rows (plain text, no prompts or replies); {consumer} needs "
                            f"{PREFERENCE_SCHEMA_ID} rows", file=str(directory))
