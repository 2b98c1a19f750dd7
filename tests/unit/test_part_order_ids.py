"""Client ids of a scale-out ladder's parts: one OCO per part, each generation its own ids."""

from __future__ import annotations

import re

import pytest

from robson.adapters.binance.exchange import leg_ids
from robson.domain.orders import OrderRole, client_order_id, order_generation, parse_part_order_id

INTENT = "pl-7f3a9c2e"


def test_a_parts_orders_carry_the_part_before_the_role():
    assert client_order_id(INTENT, OrderRole.STOP, part=2) == "rb-pl-7f3a9c2e-P2S"
    assert client_order_id(INTENT, OrderRole.STOP, 3, part=12) == "rb-pl-7f3a9c2e-P12S3"


def test_a_parts_stop_names_its_take_profit_leg_and_its_list_in_every_generation():
    assert leg_ids("rb-pl-7f3a9c2e-P2S") == ("rb-pl-7f3a9c2e-P2T", "rb-pl-7f3a9c2e-P2L")
    assert leg_ids("rb-pl-7f3a9c2e-P2S4") == ("rb-pl-7f3a9c2e-P2T4", "rb-pl-7f3a9c2e-P2L4")


@pytest.mark.parametrize(("order_id", "expected"), [
    ("rb-pl-7f3a9c2e-P2S", 0), ("rb-pl-7f3a9c2e-P2S7", 7), ("rb-pl-7f3a9c2e-P12S", None),
    ("rb-pl-7f3a9c2e-S", None), ("rb-pl-7f3a9c2e-P2T", None),
])
def test_order_generation_reads_only_that_parts_ids(order_id, expected):
    assert order_generation(INTENT, OrderRole.STOP, order_id, part=2) == expected


def test_whole_position_lookups_never_see_a_parts_orders():
    for role in OrderRole:
        assert order_generation(INTENT, role, "rb-pl-7f3a9c2e-P1S2") is None


@pytest.mark.parametrize(("order_id", "expected"), [
    ("rb-pl-7f3a9c2e-P1S", (1, OrderRole.STOP, 0)), ("rb-pl-7f3a9c2e-P3T2", (3, OrderRole.TARGET, 2)),
    ("rb-pl-7f3a9c2e-P10L11", (10, OrderRole.ORDER_LIST, 11)), ("rb-pl-7f3a9c2e-S1", None),
    ("rb-pl-7f3a9c2e-P0S", None), ("rb-pl-7f3a9c2e-P1Q", None), ("rb-pl-00000000-P1S", None),
])
def test_a_part_id_parses_back_to_its_part_role_and_generation(order_id, expected):
    assert parse_part_order_id(INTENT, order_id) == expected


def test_part_ids_fit_binance_client_ids_even_far_along():
    longest = client_order_id("pl-ffffffff", OrderRole.ORDER_LIST, 9999, part=99)
    assert len(longest) <= 36 and re.fullmatch(r"[A-Za-z0-9_-]+", longest)
