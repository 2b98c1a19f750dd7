"""docs/strategy-reference.md cannot rot: every YAML example parses, and the grammar has no undocumented word."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from robson.domain.conditions import (
    ARITHMETIC,
    COMPARISONS,
    CROSSES,
    INDICATOR_KINDS,
    PRICE_SERIES,
    ConfirmRule,
    parse_condition,
    parse_indicators,
    parse_scan,
    parse_setup,
)
from robson.domain.patterns import PATTERNS
from robson.domain.strategy import AutoEntry, parse_strategy
from robson.errors import StrategyError

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "strategy-reference.md").read_text(encoding="utf-8")
OPERATORS = (*COMPARISONS, *CROSSES, "between", "all", "any", "not", "pattern")
SETUP_PARTS = {"confirm", "window", "confidence"}  # an example of some fields of one setup


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Return (language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.M | re.S)]


YAML_EXAMPLES = [body for language, body in fenced_blocks(DOC) if language == "yaml"]
EXAMPLES_TEXT = "\n".join(YAML_EXAMPLES)


def first_key(body: str) -> str:
    return next(line for line in body.splitlines() if line.strip() and not line.startswith("#")).split(":")[0]


def declared_indicators() -> dict[str, Any]:
    """Every indicator the document's examples declare, by name."""
    declared: dict[str, Any] = {}
    for body in YAML_EXAMPLES:
        data = yaml.safe_load(body)
        if isinstance(data, dict) and "scan" in data:
            declared |= data["scan"].get("indicators") or {}
        elif isinstance(data, dict) and "indicators" in data:
            declared |= data["indicators"]
    return declared


def references() -> dict[str, str | None]:
    """The names a condition in the document may use, as parse_scan builds them."""
    refs: dict[str, str | None] = {name: None for name in PRICE_SERIES}
    for spec in parse_indicators(declared_indicators()):
        refs |= {output: None for output in spec.outputs}
        if spec.outputs != (spec.name,):
            refs[spec.name] = ", ".join(spec.outputs)
    return refs


def bundled(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "strategies" / f"{name}.yaml").read_text(encoding="utf-8"))


def parse_example(body: str) -> None:
    """Parse one example the way robson reads its kind of YAML; raise StrategyError."""
    kind, refs = first_key(body), references()
    if kind in OPERATORS:  # one condition per line
        for line in body.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                parse_condition(yaml.safe_load(line), refs, "when")
        return
    data = yaml.safe_load(body)
    if kind == "scan":
        parse_scan(data["scan"])
    elif kind == "indicators":
        parse_indicators(data["indicators"])
    elif kind == "when":
        parse_condition(data["when"], refs, "when")
    elif set(data) <= SETUP_PARTS:
        parse_setup({"name": "example", "side": "buy", "when": {"gt": ["close", "open"]}} | data, refs, "setup")
    elif kind == "entry":
        strategy = parse_strategy(bundled("rescue-forces") | data, "example.yaml")
        rules = data["auto_entry"]
        assert strategy.auto_entry == AutoEntry(Decimal(str(rules["min_confidence"])), rules["max_entries_per_day"],
                                                rules["cooldown_minutes"])
    else:
        pytest.fail(f"an example of a kind this test cannot parse yet ({kind!r}): teach parse_example")


@pytest.mark.parametrize("body", YAML_EXAMPLES, ids=[first_key(body) for body in YAML_EXAMPLES])
def test_every_yaml_example_in_the_reference_parses(body):
    parse_example(body)


def test_the_reference_has_examples_of_every_kind_of_section():
    kinds = {first_key(body) for body in YAML_EXAMPLES}

    assert {"scan", "indicators", "when", "confirm", "confidence", "entry"} <= kinds
    assert kinds & set(OPERATORS)


def bundled_scans_shown() -> dict[str, str]:
    """Return the YAML under each '### Title (...)' of the bundled strategies' section, by file name."""
    section = DOC.split("## The bundled strategies' scans", 1)[1]
    shown = {}
    for title, text in re.findall(r"^### (.+?) \(.*?\)\n(.*?)(?=^### |\Z)", section, flags=re.M | re.S):
        ((_, body),) = [block for block in fenced_blocks(text) if block[0] == "yaml"]
        shown[title.lower().replace(" ", "-")] = body
    return shown


def test_the_bundled_scans_shown_are_the_bundled_files():
    shown = bundled_scans_shown()

    assert set(shown) == {"rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99", "ma-cross-5m"}
    for name, body in shown.items():
        assert yaml.safe_load(body)["scan"] == bundled(name)["scan"], name


def test_the_complete_example_is_rescue_forces():
    complete = next(body for body in YAML_EXAMPLES if first_key(body) == "scan")

    assert yaml.safe_load(complete)["scan"] == bundled("rescue-forces")["scan"]


def test_the_error_shown_is_the_one_a_misspelt_reference_gives():
    shown = next(body for language, body in fenced_blocks(DOC) if language == "" and "unknown reference" in body)
    data = bundled("rescue-forces")
    data["scan"]["setups"][0]["when"]["all"][1]["gt"][1]["mul"][1] = "vol_avg"

    with pytest.raises(StrategyError) as raised:
        parse_strategy(data, "strategies/rescue-forces.yaml")

    assert " ".join(shown.split()) == raised.value.message


@pytest.mark.parametrize("kind", INDICATOR_KINDS)
def test_every_indicator_kind_is_documented_with_an_example(kind):
    assert f"| `{kind}` |" in DOC
    assert re.search(rf"\bkind: {kind}\b", EXAMPLES_TEXT)


@pytest.mark.parametrize("operator", OPERATORS)
def test_every_operator_is_documented_with_an_example(operator):
    assert f"| `{operator}` |" in DOC
    assert re.search(rf"(^|[\s{{-]){operator}:", EXAMPLES_TEXT, flags=re.M)


@pytest.mark.parametrize("operation", ARITHMETIC)
def test_every_arithmetic_term_is_documented_with_an_example(operation):
    assert f"| `{operation}` |" in DOC
    assert f"{{{operation}: [" in EXAMPLES_TEXT


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_candlestick_pattern_is_documented_with_an_example(pattern):
    assert f"| `{pattern}` |" in DOC
    assert re.search(rf"pattern: {pattern}\b", EXAMPLES_TEXT)


@pytest.mark.parametrize("rule", [rule.value for rule in ConfirmRule])
def test_every_confirmation_rule_is_documented_with_an_example(rule):
    assert f"| `{rule}` |" in DOC
    assert re.search(rf"^confirm:\s*(\n\s+)?{rule}\b", EXAMPLES_TEXT, flags=re.M)
