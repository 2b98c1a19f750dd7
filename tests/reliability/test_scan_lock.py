"""`robson scan` as cron runs it: two at once record each signal once; a SIGKILLed scan leaves no stale lock."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.databases import Target, fetch
from tests.reliability.helpers import ROBSON, process_env, run_robson, write_config

pytestmark = pytest.mark.slow

AS_OF = "2021-06-22T01:15"  # Rescue Forces detects on the 01:00 candle of BTCUSDT
SCAN = ["--as-of", AS_OF, "scan", "--symbols", "BTCUSDT", "--json"]

# Loaded by the child python through PYTHONPATH; never part of robson: SIGKILL the scan as it records a signal.
KILL_HOOK = '''\
import os
import signal

if os.environ.get("KILL_ON_ADD_SIGNAL"):
    from robson.adapters.store.session import SqlSession

    def _killing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    SqlSession.add_signal = _killing
'''


def signal_keys(db: Target) -> list[tuple]:
    rows = fetch(db, "SELECT strategy, pattern, symbol, timeframe, candle_open_time FROM signals ORDER BY 1, 2, 3, 4, 5")
    return [tuple(row.values()) for row in rows]


def lock_rows(db: Target) -> list[tuple]:
    return [tuple(row.values()) for row in fetch(db, "SELECT name, pid FROM locks")]


@pytest.fixture
def env(tmp_path: Path, robson_db: Target) -> dict[str, str]:
    config = write_config(tmp_path / "robson.yaml", {})
    return process_env(ROBSON_DB=str(robson_db), ROBSON_CONFIG=str(config))


def test_two_scans_at_once_record_each_signal_once(tmp_path: Path, env: dict[str, str], robson_db: Target) -> None:
    children = [subprocess.Popen([str(ROBSON), *SCAN], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(child.wait(timeout=120), *child.communicate()) for child in children]

    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 4]), results
    for code, stdout, stderr in results:
        if code == 4:
            assert "robson scan is already running" in stderr
            assert json.loads(stdout)["error"]["code"] == 4  # under --json the refusal is a document too
    detected = [s["id"] for code, stdout, _ in results if code == 0 for s in json.loads(stdout)["detected"]]
    assert len(detected) == 1
    keys = signal_keys(robson_db)
    assert len(keys) == len(set(keys)) == 1
    assert lock_rows(robson_db) == []


def test_a_scan_killed_mid_run_leaves_no_stale_lock(tmp_path: Path, env: dict[str, str], robson_db: Target) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")

    killed = run_robson(SCAN, {**env, "PYTHONPATH": str(hook), "KILL_ON_ADD_SIGNAL": "1"}, cwd=tmp_path)
    left = lock_rows(robson_db)
    rerun = run_robson(SCAN, env, cwd=tmp_path)

    assert killed.returncode == -signal.SIGKILL
    assert [name for name, _ in left] == ["scan"]  # the dead process's row is still there ...
    assert rerun.returncode == 0, rerun.stderr  # ... and the next scan takes it over at once
    assert len(json.loads(rerun.stdout)["detected"]) == 1
    assert len(signal_keys(robson_db)) == 1
    assert lock_rows(robson_db) == []
