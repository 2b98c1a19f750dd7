"""Read the YAML files a user writes for robson (the config, strategies), strictly.

PyYAML's safe_load lets a repeated key silently replace the first one (an edit to the first
`execution:` block is lost), and a deeply nested document exhausts Python's stack. Here both are
errors naming the file and the line, as are bytes that are not UTF-8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from robson.errors import InvalidInput

MAX_DEPTH = 40  # robson's own files nest 4 levels; a scan condition a few more
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Problem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and nesting deeper than MAX_DEPTH."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Problem(self.peek_event().start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:  # `<<: *defaults` may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_line.get(key)
                except TypeError:  # an unhashable key: SafeLoader says so itself
                    continue
                line = key_node.start_mark.line + 1
                if earlier is not None:
                    raise _Problem(line, f"duplicate key '{key}' (first given at line {earlier}; "
                                         "the second would silently replace it)")
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path, error: type[InvalidInput]) -> Any:
    """Parse the YAML file at path; raise error (exit 2) naming the file and the line of any problem."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(f"{path}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _Problem as e:
        raise error(f"{path}: line {e.line}: {e.message}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = str(getattr(e, "problem", None) or e).splitlines()[0]  # one line: the error boundary prints one
        raise error(f"{path}: not valid YAML{where}: {reason}") from None
    except RecursionError:  # a shape compose_node does not see (very long alias chains)
        raise error(f"{path}: nested too deeply") from None
