"""Short, typeable IDs with a type prefix (e.g. pl-7f3a9c2e)."""

from __future__ import annotations

import secrets

INTENT_PREFIX = "pl"
OPERATION_PREFIX = "op"


def new_id(prefix: str) -> str:
    """Return a fresh ID such as 'pl-7f3a9c2e' (32 random bits)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def normalize_prefix(text: str, prefix: str) -> str:
    """Accept 'pl-7f3', '7f3' or 'PL-7F3' and return the lowercase 'pl-7f3' form."""
    text = text.strip().lower()
    if not text.startswith(f"{prefix}-"):
        text = f"{prefix}-{text}"
    return text
