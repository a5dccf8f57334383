"""Tokens, money and the ``--max-cost`` hard stop.

Real counts come from each reply's ``usage``. Before a request is sent its worst case (estimated prompt tokens plus
``max_tokens`` out) is reserved against the cap, so requests in flight can never carry the spend past ``--max-cost``.
Estimates (``--dry-run``, reservations, the tokens-per-minute limiter) use ~4 characters per token: no tokenizer is
assumed for an arbitrary remote model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prefdata.contract.errors import PrefdataError

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role markers and separators per chat message


class BudgetExceeded(PrefdataError):
    """``--max-cost`` was reached: nothing more is sent; everything completed so far is in the cache."""

    exit_code = 3


def estimate_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    chars = sum(len(m["content"]) for m in messages)
    return -(-chars // CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(messages)


@dataclass
class Accounting:
    """Running totals for one run; ``price_in``/``price_out`` are currency units per 1M tokens."""

    price_in: float = 0.0
    price_out: float = 0.0
    max_cost: float | None = None
    requests: int = 0  # requests answered (each counted once, however many attempts it took), refused ones included
    rejected: int = 0  # of those, refused by the server as this one request's fault (HTTP 400/413/422)
    cached: int = 0  # results served from the cache
    retries: int = 0  # requests sent again (the client's retries and re-asked malformed replies)
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    reserved: float = 0.0
    stopped: bool = False

    def cost_of(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1_000_000

    @property
    def cost(self) -> float:
        return self.cost_of(self.tokens_in, self.tokens_out)

    def reserve(self, tokens_in: int, max_tokens: int) -> float:
        """Claim the worst case of one request against the cap; raise `BudgetExceeded` when it would not fit."""
        worst = self.cost_of(tokens_in, max_tokens)
        if self.stopped or (self.max_cost is not None and self.cost + self.reserved + worst > self.max_cost):
            self.stopped = True
            raise BudgetExceeded(
                f"--max-cost {self.max_cost:g} reached (spent {self.cost:.6f}, {self.requests} requests); completed "
                "results are cached: raise --max-cost and run again to continue without paying for them twice"
            )
        self.reserved += worst
        return worst

    def release(self, reservation: float) -> None:
        self.reserved = max(0.0, self.reserved - reservation)

    def record(self, tokens_in: int, tokens_out: int) -> None:
        self.requests += 1
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    def record_rejected(self) -> None:
        """A request the server refused (its record is quarantined): it was sent and answered, so it counts."""
        self.requests += 1
        self.rejected += 1

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "rejected": self.rejected,
            "cached_hits": self.cached,
            "retries": self.retries,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "estimated_cost": round(self.cost, 6),
            "price_in_per_1m": self.price_in,
            "price_out_per_1m": self.price_out,
        }
