"""The CONFIRM prompt of a LIVE execute, in a real process: asked last, on stderr, never on stdout."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.live.conftest import Live
from tests.reliability.helpers import ROBSON, process_env


def execute_typing(live: Live, intent_id: str, answer: str, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(ROBSON), "execute", intent_id, "--live", *extra], input=answer,
                            env=process_env(**live.settings), cwd=live.tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    live.outputs += [result.stdout, result.stderr]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("answer", ["nope\n", "", "confirm\n"], ids=["wrong-word", "no-input", "lowercase"])
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_a_live_execute_not_confirmed_places_nothing_and_keeps_stdout_clean(live: Live, answer, as_json) -> None:
    planned = live.planned_and_validated()

    result = execute_typing(live, planned["id"], answer, *(["--json"] if as_json else []))

    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("Type CONFIRM to place a LIVE order: ")
    assert "Error: LIVE not confirmed" in result.stderr
    if as_json:
        assert json.loads(result.stdout)["error"]["code"] == 3
        assert result.stdout.startswith("{")  # no stray space before the document
    else:
        assert result.stdout == ""
    assert live.orders() == []


@pytest.mark.slow
def test_a_live_execute_confirmed_at_the_prompt_prints_only_its_document(live: Live) -> None:
    planned = live.planned_and_validated()

    result = execute_typing(live, planned["id"], "CONFIRM\n", "--json")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("{")
    executed = json.loads(result.stdout)
    assert (executed["mode"], executed["operation"]["status"]) == ("live", "ACTIVE")
    assert len(live.orders("MARKET")) == 1
