"""Exact money arithmetic: parsing user numbers and rounding to exchange steps."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation

from robson.errors import InvalidInput

ZERO = Decimal("0")
ONE = Decimal("1")
HUNDRED = Decimal("100")
# No price, quantity or capital on a spot exchange comes near these; beyond them arithmetic breaks down.
MAX_NUMBER = Decimal("1e15")
MIN_NUMBER = Decimal("1e-12")


def parse_decimal(value: object, field: str, *, positive: bool = True, allow_zero: bool = False) -> Decimal:
    """Parse a user-supplied number exactly; raise InvalidInput naming the field."""
    if isinstance(value, float):
        # Floats never reach money; the string form is what the user meant.
        value = repr(value)
    if isinstance(value, Decimal):
        number = value
    else:
        text = str(value).strip().replace("_", "")
        if not text.isascii():  # Decimal() would read '١٢٣' or '１２３' as 123: only 0-9 are digits here
            raise InvalidInput(f"{field} must be a number written with the digits 0-9, got '{_shown(value)}'")
        try:
            number = Decimal(text)
        except (InvalidOperation, ValueError):
            raise InvalidInput(f"{field} must be a number, got '{_shown(value)}'") from None
    if not number.is_finite():
        raise InvalidInput(f"{field} must be a finite number, got '{_shown(value)}'")
    if abs(number) >= MAX_NUMBER or (number and abs(number) < MIN_NUMBER):
        raise InvalidInput(f"{field} is out of range, got '{_shown(value)}' (allowed: {MIN_NUMBER} to {MAX_NUMBER:,})")
    if positive:
        if number < 0 or (number == 0 and not allow_zero):
            raise InvalidInput(f"{field} must be greater than 0, got '{_shown(value)}'")
    return number


def _shown(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "…"


def percent(part: Decimal, whole: Decimal) -> Decimal:
    """Return part as a percentage of whole (0 when whole is 0)."""
    if whole == 0:
        return ZERO
    return part / whole * HUNDRED


def round_down_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Round value down to a multiple of step (a step of 0 means no rounding)."""
    if step <= 0:
        return value
    return ((value / step).to_integral_value(rounding=ROUND_DOWN) * step).quantize(step)


def round_to_tick(value: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    """Round a price to the tick, up (ceiling) or down (floor)."""
    if tick <= 0:
        return value
    mode = ROUND_CEILING if up else ROUND_FLOOR
    return ((value / tick).to_integral_value(rounding=mode) * tick).quantize(tick)


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Tell whether value is an exact multiple of step (always true for step 0)."""
    if step <= 0:
        return True
    return (value % step) == 0


def fmt_amount(value: Decimal | None) -> str:
    """Render an amount of money for a sentence: to the cent, or to two significant digits below a cent.

    3932.5998175464 → '3932.60', 0.0365123 → '0.037', 0.00000051 → '0.00000051'; never more than 8
    places. Records keep the exact figure; this is only how a message reads.
    """
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return fmt(value, min(8, max(2, 1 - value.adjusted())))  # fmt quantizes half-even, as the books round


def fmt(value: Decimal | None, places: int | None = None) -> str:
    """Render a Decimal without exponent, optionally quantized for display."""
    if value is None:
        return "-"
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = format(value, "f")
    if "." in text and places is None:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
