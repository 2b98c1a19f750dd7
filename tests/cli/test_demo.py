"""scripts/demo.sh, run once as a real subprocess of the installed `robson` script."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_script_walks_the_journey_on_the_installed_command(tmp_path):
    repo_demo_db = REPO / "demo-data" / "demo.db"
    untouched = repo_demo_db.stat().st_mtime_ns if repo_demo_db.exists() else None
    (tmp_path / "empty.yaml").write_text("")
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ROBSON_", "BINANCE_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "ROBSON_DB": str(tmp_path / "demo.db"),
        "ROBSON_CONFIG": str(tmp_path / "empty.yaml"),  # the script cd's into the repo: no ./.robson.yaml leaks in
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
    }

    result = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], env=env, capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for word in ("PENDING", "VALIDATED", "EXECUTED", "ACTIVE", "DRY-RUN", "Validation PASS"):
        assert word in result.stdout, word
    assert "\x1b[" not in result.stdout
    assert (tmp_path / "demo.db").exists()
    assert (repo_demo_db.stat().st_mtime_ns if repo_demo_db.exists() else None) == untouched
