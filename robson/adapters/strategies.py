"""Strategy YAML files: the bundled ones plus a user folder, validated on load."""

from __future__ import annotations

from pathlib import Path

from robson.domain.strategy import Strategy, parse_strategy
from robson.errors import NotFound, StrategyError


def bundled_strategies_dir() -> Path:
    """Return the bundled strategies folder (inside the wheel, or the repo's strategies/)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "strategies"
    return installed if installed.is_dir() else package.parent / "strategies"


class StrategyCatalog:
    """Strategies by name; user files override bundled ones with the same name."""

    def __init__(self, folders: list[Path]) -> None:
        self._folders = folders
        self._loaded: dict[str, Strategy] | None = None

    @classmethod
    def default(cls, user_dir: str | None) -> StrategyCatalog:
        folders = [bundled_strategies_dir()]
        if user_dir:
            path = Path(user_dir).expanduser()
            if not path.is_dir():
                raise StrategyError(f"strategies_dir {path} is not a folder")
            folders.append(path)
        return cls(folders)

    def _load(self) -> dict[str, Strategy]:
        if self._loaded is None:
            from robson.adapters.yaml_file import load_yaml

            strategies: dict[str, Strategy] = {}
            for folder in self._folders:
                files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
                for path in files:
                    strategy = parse_strategy(load_yaml(path, StrategyError), str(path))
                    strategies[strategy.name] = strategy
            self._loaded = strategies
        return self._loaded

    def all(self) -> list[Strategy]:
        return sorted(self._load().values(), key=lambda s: s.name)

    def get(self, name: str) -> Strategy:
        """Return the strategy called name; raise NotFound listing the known ones."""
        strategies = self._load()
        key = name.strip().lower()
        if key not in strategies:
            raise NotFound(f"unknown strategy '{name}' (known: {', '.join(sorted(strategies))})")
        return strategies[key]
