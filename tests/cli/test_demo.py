"""scripts/demo.sh, run once as a real subprocess of the installed `robson` script."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IDS = re.compile(r"\b(pl|op|sg)-[0-9a-f]{8}\b")


def comparable(text: str) -> list[str]:
    """Return the lines with random ids masked and trailing spaces dropped."""
    return [IDS.sub(r"\1-…", line).rstrip() for line in text.strip("\n").splitlines()]


def readme_demo_block() -> str:
    """Return the first fenced block of README.md that starts with a demo step."""
    blocks, block = [], None
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```") and block is None:
            block = []
        elif line.startswith("```"):
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(line)
    return next("\n".join(b) for b in blocks if b and b[0].startswith("$ robson"))


@pytest.mark.slow
def test_the_demo_script_walks_the_journey_on_the_installed_command(tmp_path, db_path):
    repo_demo_db = REPO / "demo-data" / "demo.db"
    untouched = repo_demo_db.stat().st_mtime_ns if repo_demo_db.exists() else None
    (tmp_path / "empty.yaml").write_text("")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ROBSON_", "BINANCE_"))}
    env.pop("COLUMNS", None)  # the script's own width, as README.md shows it
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "ROBSON_DB": str(db_path),  # a file, or a PostgreSQL URL (--database postgresql)
        "ROBSON_CONFIG": str(tmp_path / "empty.yaml"),  # the script cd's into the repo: no ./.robson.yaml leaks in
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
    }

    result = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for word in ("1 new signal", "1 confirmed", "PENDING", "VALIDATED", "EXECUTED", "ACTIVE", "DRY-RUN",
                 "Validation PASS", "1 stop move", "1 closed", "target @ 34725.37 P&L 15.98 USDT",
                 "│ rescue-forces │ 1      │ 1/0/0  │ 100.0%", "Backtest rescue-forces on BTCUSDT 15m",
                 "By exit reason"):
        assert word in result.stdout, word
    assert comparable(result.stdout) == comparable(readme_demo_block())
    assert "\x1b[" not in result.stdout
    # A URL names no file: nothing named after it (scheme, host or password) is made on disk.
    assert not [p for p in (*REPO.iterdir(), *tmp_path.iterdir()) if p.name.startswith(("postgresql", "sqlite:"))]
    assert isinstance(db_path, str) or db_path.exists()
    assert (repo_demo_db.stat().st_mtime_ns if repo_demo_db.exists() else None) == untouched
