"""`robson scan` imports only what its strategies use: pandas and pandas-ta only for a recursive indicator.

Each scan runs as a real process (the modules a command imports are a property of a fresh
interpreter), under `python -X importtime`, which lists every module the process imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"pandas", "pandas_ta", "numba"}

BANDS_ONLY = """\
name: bands-only
entry: manual
timeframe: 1h
risk_percent: 1
stop: {method: fixed_percent, percent: 2}
target: {r_multiple: 2}
scan:
  indicators:
    bb: {kind: bbands, length: 20, std: 2}
    ma9: {kind: sma, length: 9}
    vol_avg20: {kind: volume_sma, length: 20}
  setups:
    - name: close-below-lower-band
      side: buy
      when:
        all:
          - lt: [close, bb.lower]
          - gt: [volume, vol_avg20]
          - lt: [close, ma9]
      confirm: next_close_above_high
      window: 3
"""


def imported_by_scan(tmp_path: Path, *args: str) -> set[str]:
    """Run `robson scan *args` in a fresh interpreter on the sample market; return the modules it imported."""
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "bands-only.yaml").write_text(BANDS_ONLY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROBSON_", "BINANCE_"))}
    env.update(PYTHONPATH=str(REPO), XDG_CONFIG_HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path),
               ROBSON_DB=str(tmp_path / "r.db"), ROBSON_AS_OF="2021-06-22T01:30",
               ROBSON_STRATEGIES_DIR=str(strategies))
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "robson", "scan", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scan 2021-06-22 01:30 UTC" in done.stdout
    # -X importtime: "import time: <self us> | <cumulative us> | <indent><module>" per module imported
    return {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_a_scan_of_moving_averages_and_bollinger_bands_imports_neither_pandas_nor_numba(tmp_path):
    modules = imported_by_scan(tmp_path, "--strategy", "rescue-forces", "--strategy", "bands-only",
                               "--symbols", "BTCUSDT,ETHUSDT")

    assert "numpy" in modules  # the check sees what the scan imports
    assert not {name.partition(".")[0] for name in modules} & HEAVY


def test_a_scan_with_rsi_imports_pandas_ta_and_compiles_nothing_with_numba(tmp_path):
    modules = imported_by_scan(tmp_path, "--strategy", "bounce-back", "--strategy", "smooth-sailing",
                               "--symbols", "BTCUSDT,ETHUSDT")

    assert {"pandas", "pandas_ta"} <= modules
    # numba loads its compiler's lowering modules (numba.np.arraymath and friends) on a first compile only
    assert "numba.np.arraymath" not in modules
