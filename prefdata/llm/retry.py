"""When to ask the server again, and after how long: the openai client's retry rules, applied by the engine.

The engine retries itself (its client has ``max_retries=0``) so that every attempt takes its turn under ``--rpm`` /
``--tpm`` and none is sent once the run is stopping; the rules stay the client's: HTTP 408, 409, 429 and 5xx, timeouts
and lost connections are retried, waiting what the server names (``retry-after-ms`` / ``Retry-After``, up to
`MAX_RETRY_AFTER`) or an exponential backoff with jitter; ``x-should-retry`` overrides the status.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx; any other status is fatal: the whole run stops
INITIAL_BACKOFF, MAX_BACKOFF = 0.5, 8.0  # seconds; the openai client's own schedule
MAX_RETRY_AFTER = 120.0  # a server asking for a longer wait is not retried (the openai client's rule)


class Malformed(Exception):
    """A 200 reply that is not a chat completion (bad JSON, no choices): asked again, like a server error."""


def retry_delay(error: Exception, attempt: int) -> float | None:
    """Seconds to wait before asking again after ``error`` on attempt ``attempt`` (0 first); None: do not retry.

    A reply that is not a chat completion is asked again at once: the server answered, it is not overloaded.
    """
    import openai

    if isinstance(error, (Malformed, ValueError, openai.APIResponseValidationError)):
        return 0.0
    backoff = min(INITIAL_BACKOFF * 2.0 ** min(attempt, 32), MAX_BACKOFF) * (1 - 0.25 * random.random())
    if isinstance(error, openai.APIConnectionError):  # timeouts included
        return backoff
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    retry_after = _retry_after(headers)
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        return None
    should = headers.get("x-should-retry")
    retryable = should == "true" if should in ("true", "false") else (
        error.status_code in RETRYABLE_STATUS or error.status_code >= 500)
    if not retryable:
        return None
    return retry_after if retry_after is not None and retry_after > 0 else backoff


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asks for, in seconds: ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date)."""
    for header, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        return seconds if math.isfinite(seconds) else MAX_RETRY_AFTER + 1
    try:
        date = email.utils.parsedate_tz(headers.get("retry-after") or "")
        return None if date is None else float(email.utils.mktime_tz(date) - time.time())
    except (TypeError, ValueError, OverflowError):
        return None
