"""Short, typeable IDs with a type prefix (e.g. pl-7f3a9c2e)."""

from __future__ import annotations

import secrets

INTENT_PREFIX = "pl"
OPERATION_PREFIX = "op"
BACKTEST_PREFIX = "bt"
ALERT_PREFIX = "al"


def new_id(prefix: str) -> str:
    """Return a fresh ID such as 'pl-7f3a9c2e' (32 random bits)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def normalize_prefix(text: str, prefix: str) -> str:
    """Accept 'pl-7f3', '7f3', 'PL-7F3', 'pl7f3' or 'pl' and return the lowercase 'pl-7f3' (or 'pl-') form.

    Every type prefix holds a letter that is not a hex digit, so 'pl…' is never the start of the
    random part: it is the type prefix typed without its dash.
    """
    text = text.strip().lower()
    if text.startswith(prefix):
        text = text[len(prefix):].removeprefix("-")
    return f"{prefix}-{text}"
