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


def application_imports() -> dict[str, set[str]]:
    """Map each application module to the application modules it imports, at the top or inside a function."""
    graph = {}
    for path in sorted((ROOT / "application").glob("*.py")):
        module = path.stem
        tree = ast.parse(path.read_text())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robson.application."):
                if not _under_type_checking(tree, node):
                    targets.add(node.module.rsplit(".", 1)[1])
        graph[module] = targets - {module}
    return graph


def _under_type_checking(tree: ast.AST, target: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            if any(child is target for child in ast.walk(node)):
                return True
    return False


def test_application_modules_never_import_each_other_in_a_circle():
    graph = application_imports()
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            else:
                visit(target, path + [target])

    for module in graph:
        visit(module, [module])
    assert cycles == []


def test_no_use_case_imports_another_ones_private_names():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("robson."):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []
