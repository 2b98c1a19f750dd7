"""How an amount of money reads in a message: to the cent, two significant digits below a cent."""

from decimal import Decimal as D

import pytest

from robson.domain.money import fmt_amount


@pytest.mark.parametrize(("value", "shown"), [
    ("3932.5998175464", "3932.60"),   # a balance: cents
    ("203.2612", "203.26"),
    ("12", "12.00"),
    ("-1.005", "-1.00"),             # half-even, as the books round
    ("0.0365123", "0.037"),          # a fee below a cent keeps two significant digits
    ("0.00000051", "0.00000051"),    # a BTC commission
    ("0.004999", "0.0050"),
    ("0", "0"),
])
def test_an_amount_reads_to_the_cent_or_two_significant_digits(value, shown):
    assert fmt_amount(D(value)) == shown


def test_no_amount_reads_as_a_dash():
    assert fmt_amount(None) == "-"
