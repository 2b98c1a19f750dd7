"""The domain is pure: it imports nothing from outer layers or I/O libraries."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "robson"
FORBIDDEN_IN_DOMAIN = {"sqlmodel", "sqlalchemy", "binance", "typer", "rich", "requests", "aiohttp", "yaml", "pandas",
                       "pandas_ta", "numpy", "sqlite3", "httpx", "urllib", "socket", "robson.adapters",
                       "robson.application", "robson.cli", "robson.bootstrap", "robson.config"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_imports_nothing_from_outer_layers():
    offenders = []
    for path in sorted((ROOT / "domain").glob("*.py")):
        for name in imported_modules(path):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_DOMAIN):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_domain_never_uses_float():
    offenders = [p.name for p in (ROOT / "domain").glob("*.py") if "float(" in p.read_text()]
    assert offenders == []


def test_application_never_imports_adapters_or_cli():
    offenders = []
    for path in sorted((ROOT / "application").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("robson.cli", "robson.bootstrap", "robson.adapters")):
                offenders.append(f"{path.name}: {node.module}")
    assert offenders == []
