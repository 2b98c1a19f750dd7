"""`robson signals list|show`: what the scans found, why, and the intent a signal became."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_user_error, floats_in, parsed

BTC = ("--symbols", "BTCUSDT")


@pytest.fixture
def recorded(robson) -> dict[str, str]:
    """Scan the sample market so that there is one signal of each kind; return their IDs by status."""
    def scan(as_of: str, *args: str) -> dict:
        return parsed(robson("--as-of", as_of, "scan", *BTC, *args, "--json"))

    confirmed = scan("2021-06-22T01:15", "--strategy", "rescue-forces")["detected"][0]["id"]
    scan("2021-06-22T01:30", "--strategy", "rescue-forces")
    invalidated = scan("2021-06-16T18:30", "--strategy", "rescue-forces")["detected"][0]["id"]
    scan("2021-06-16T18:45", "--strategy", "rescue-forces")
    detected = scan("2021-06-17T18:00", "--strategy", "bounce-back")["detected"][0]["id"]
    return {"CONFIRMED": confirmed, "INVALIDATED": invalidated, "DETECTED": detected}


def test_list_shows_every_signal_by_candle_time(robson, recorded):
    doc = parsed(robson("signals", "list", "--json"))

    assert [s["id"] for s in doc["signals"]] == [recorded["INVALIDATED"], recorded["DETECTED"], recorded["CONFIRMED"]]
    assert floats_in(doc) == []


@pytest.mark.parametrize("status", ["CONFIRMED", "invalidated", "DETECTED"])
def test_list_filters_by_status(robson, recorded, status):
    doc = parsed(robson("signals", "list", "--status", status, "--json"))

    assert [s["id"] for s in doc["signals"]] == [recorded[status.upper()]]


def test_list_filters_by_strategy_and_symbol(robson, recorded):
    by_strategy = parsed(robson("signals", "list", "--strategy", "bounce-back", "--json"))
    by_symbol = parsed(robson("signals", "list", "--symbol", "ethusdt", "--json"))

    assert [s["id"] for s in by_strategy["signals"]] == [recorded["DETECTED"]]
    assert by_symbol["signals"] == []


def test_list_refuses_an_unknown_status(robson):
    assert_user_error(robson("signals", "list", "--status", "LOST"), 2, "unknown status 'LOST'", "EXPIRED")


def test_list_prints_a_table(robson, recorded):
    result = robson("signals", "list", env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert "Signals (3)" in result.stdout and recorded["CONFIRMED"] in result.stdout


def test_show_explains_detection_and_confirmation_with_the_values_and_the_intent(robson, recorded):
    signal_id = recorded["CONFIRMED"]

    doc = parsed(robson("signals", "show", signal_id[:6], "--json"))

    assert doc["id"] == signal_id and doc["status"] == "CONFIRMED"
    assert doc["reason"] == "ma4 crosses above ma9 and volume > 1.5 × vol_avg20; boosts 1/2: close > open"
    assert doc["values"]["volume"] == "3914.183256" and doc["values"]["ma4[-1]"] == "31536.345"
    assert "still holds on the next close" in doc["resolution"]
    assert doc["intent"]["id"] == doc["intent_id"]
    assert (doc["intent"]["source"], doc["intent"]["signal_id"]) == ("pattern", signal_id)


def test_show_says_why_a_signal_was_invalidated(robson, recorded):
    doc = parsed(robson("signals", "show", recorded["INVALIDATED"], "--json"))

    assert doc["status"] == "INVALIDATED" and "no longer holds on the next close" in doc["resolution"]
    assert doc["intent"] is None


def test_show_prints_the_reasons_and_a_table_of_values(robson, recorded):
    result = robson("signals", "show", recorded["DETECTED"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    assert "not yet: waiting for the next closed candle" in result.stdout
    assert "Values at the signal candle" in result.stdout and "bb.lower" in result.stdout


def test_show_an_unknown_id_exits_2(robson, recorded):
    assert_user_error(robson("signals", "show", "sg-00000000"), 2, "sg-00000000")
