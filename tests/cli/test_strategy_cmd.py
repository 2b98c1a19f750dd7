"""`robson strategy show`: the scan, auto entry, trailing and time exit, for people and for scripts."""

from __future__ import annotations

from tests.cli.conftest import floats_in, parsed


def test_strategy_show_json_has_the_scan_in_readable_form(robson):
    doc = parsed(robson("strategy", "show", "rescue-forces", "--json"))

    scan = doc["scan"]
    assert [(i["name"], i["kind"], i["params"]) for i in scan["indicators"]] == [
        ("ma4", "sma", {"length": 4}), ("ma9", "sma", {"length": 9}), ("vol_avg20", "volume_sma", {"length": 20}),
    ]
    (setup,) = scan["setups"]
    assert setup["when"] == "ma4 crosses above ma9 and volume > 1.5 × vol_avg20"
    assert setup["confirm"]["rule"] == "condition_holds"
    assert setup["confirm"]["condition"] == "ma4 crosses above ma9"
    assert setup["window"] == 1
    assert setup["confidence"] == {
        "base": "0.5", "boosts": ["volume > 2.5 × vol_avg20", "close > open"],
        "description": "0.5 + 0.5 × boosts held / 2",
    }
    assert scan["candles_needed"] == 21


def test_strategy_show_json_has_auto_entry_trailing_and_time_exit(robson):
    rescue = parsed(robson("strategy", "show", "rescue-forces", "--json"))
    bounce = parsed(robson("strategy", "show", "bounce-back", "--json"))

    assert rescue["auto_entry"] == {"min_confidence": "0.6", "max_entries_per_day": 3, "cooldown_minutes": 60}
    assert (rescue["trailing"], rescue["time_exit"]) == ("hand_span", None)
    assert (bounce["auto_entry"], bounce["trailing"]) == (None, "off")
    assert bounce["time_exit"] == {"candles": 48, "max_age": None}
    assert bounce["scan"]["indicators"][0]["outputs"] == ["bb.lower", "bb.middle", "bb.upper", "bb.bandwidth", "bb.percent"]


def test_a_manual_strategy_without_a_scan_shows_none(robson):
    doc = parsed(robson("strategy", "show", "all-in", "--json"))

    assert (doc["scan"], doc["auto_entry"]) == (None, None)


def test_strategy_list_json_has_every_scan_and_no_floats(robson):
    doc = parsed(robson("strategy", "list", "--json"))

    scanning = {s["name"] for s in doc["strategies"] if s["scan"] is not None}
    assert scanning == {"rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99", "ma-cross-5m"}
    assert floats_in(doc) == []


def test_strategy_show_prints_setups_with_their_conditions_for_a_person(robson):
    result = robson("strategy", "show", "smooth-sailing")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "setup pullback-to-ma50 (buy)" in out
    assert "ma50 > ma200 and low crosses below ma50 × 1.002 and close > ma50" in out
    assert "a close above the signal candle's high within 3 closed candles" in out
    assert "0.5 + 0.5 × boosts held / 3" in out
    assert "pattern hammer" in out
    assert "sma(length=200) of close" in out
    assert "hand span" in out and "off: a person decides every entry" in out
    assert result.stderr == ""


def test_strategy_show_prints_auto_entry_limits_and_time_exit(robson):
    rescue = robson("strategy", "show", "rescue-forces").stdout
    bounce = robson("strategy", "show", "bounce-back").stdout

    assert "confidence ≥ 0.6, at most 3 a day, 60 min cooldown" in rescue
    assert "ma4 crosses above ma9 still holds on the next close" in rescue
    assert "after 48 candles of 30m" in bounce
    assert "bb.lower, bb.middle, bb.upper" in bounce


def test_a_user_strategy_with_a_scan_error_is_refused_with_file_and_field(robson, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "bad.yaml").write_text(
        "name: bad\nentry: auto\nscan:\n  setups:\n    - name: x\n      side: buy\n      when: {gt: [close, ma7]}\n"
    )

    result = robson("strategy", "list", env={"ROBSON_STRATEGIES_DIR": str(folder)})

    assert result.exit_code == 2
    assert "bad.yaml: field 'scan.setups[0].when.gt[1]': unknown reference 'ma7'" in result.stderr
