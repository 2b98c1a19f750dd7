"""Strategy YAML files: the bundled ones plus a user folder, validated on load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from robson.domain.strategy import Strategy, parse_strategy
from robson.errors import NotFound, StrategyError


def bundled_strategies_dir() -> Path:
    """Return the bundled strategies folder (inside the wheel, or the repo's strategies/)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "strategies"
    return installed if installed.is_dir() else package.parent / "strategies"


class StrategyCatalog:
    """Strategies by name; user files override bundled ones with the same name (and say so).

    Each file stands alone: a broken one (bad YAML, a bad field) makes only its own strategy fail,
    by name when its `name:` can be read, so the monitor still watches every other strategy's
    operations. all() and check() report a broken file; healthy() skips it.
    """

    def __init__(self, folders: list[Path], announce: Callable[[str], None] | None = None) -> None:
        self._folders = folders
        self._announce = announce  # told once which user files replace bundled strategies
        self._loaded: dict[str, Strategy] | None = None
        self._broken: list[tuple[Path, str | None, StrategyError]] = []
        self._shadowed: list[tuple[str, Path, Path]] = []  # (name, user file, bundled file)

    @classmethod
    def default(cls, user_dir: str | None, announce: Callable[[str], None] | None = None) -> StrategyCatalog:
        folders = [bundled_strategies_dir()]
        if user_dir:
            path = Path(user_dir).expanduser()
            if not path.is_dir():
                raise StrategyError(f"strategies_dir {path} is not a folder")
            folders.append(path)
        return cls(folders, announce)

    def _load(self) -> dict[str, Strategy]:
        if self._loaded is None:
            from robson.adapters.yaml_file import load_yaml

            strategies: dict[str, Strategy] = {}
            for folder in self._folders:
                files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
                for path in files:
                    data = None
                    try:
                        data = load_yaml(path, StrategyError)
                        strategy = parse_strategy(data, str(path))
                    except StrategyError as e:
                        name = data.get("name") if isinstance(data, dict) else None
                        self._broken.append((path, name if isinstance(name, str) else None, e))
                        continue
                    if strategy.name in strategies and folder != self._folders[0]:
                        self._shadowed.append((strategy.name, path, Path(strategies[strategy.name].source)))
                    strategies[strategy.name] = strategy
            self._loaded = strategies
            if self._announce is not None:
                for name, user_file, bundled_file in self._shadowed:
                    self._announce(f"notice: {user_file} replaces the bundled strategy '{name}' ({bundled_file.name})")
        return self._loaded

    def check(self) -> None:
        """Raise the StrategyError of the first broken file, if any."""
        self._load()
        if self._broken:
            raise self._broken[0][2]

    def all(self) -> list[Strategy]:
        """Every strategy; raise StrategyError if a file is broken."""
        self.check()
        return self.healthy()

    def healthy(self) -> list[Strategy]:
        """Every strategy whose file loads, skipping the broken ones (see broken())."""
        return sorted(self._load().values(), key=lambda s: s.name)

    def broken(self) -> list[tuple[Path, StrategyError]]:
        self._load()
        return [(path, error) for path, _, error in self._broken]

    def shadowed(self) -> list[tuple[str, Path, Path]]:
        """(name, user file, bundled file) of each user strategy that replaces a bundled one."""
        self._load()
        return list(self._shadowed)

    def get(self, name: str) -> Strategy:
        """Return the strategy called name; raise StrategyError if its file is broken, NotFound if unknown."""
        strategies = self._load()
        key = name.strip().lower()
        if key in strategies:
            return strategies[key]
        for _, broken_name, error in self._broken:
            if broken_name is not None and broken_name.strip().lower() == key:
                raise error
        hint = f"{len(self._broken)} strategy file(s) could not be read: robson config check" if self._broken else None
        raise NotFound(f"unknown strategy '{name}' (known: {', '.join(sorted(strategies))})", hint=hint)
