"""Intent and operation state machines: every legal pair, every illegal pair."""

import itertools

import pytest

from robson.domain import intent as intent_sm
from robson.domain import operation as operation_sm
from robson.domain.intent import IntentEvent, IntentStatus
from robson.domain.operation import OperationEvent, OperationStatus
from robson.errors import IllegalTransition

S, E = IntentStatus, IntentEvent

EXPECTED_INTENT = {
    (S.PENDING, E.VALIDATION_PASSED): S.VALIDATED,
    (S.PENDING, E.VALIDATION_FAILED): S.FAILED,
    (S.VALIDATED, E.VALIDATION_PASSED): S.VALIDATED,
    (S.VALIDATED, E.VALIDATION_FAILED): S.FAILED,
    (S.VALIDATED, E.EXECUTION_STARTED): S.EXECUTING,
    (S.EXECUTING, E.EXECUTION_SUCCEEDED): S.EXECUTED,
    (S.EXECUTING, E.EXECUTION_FAILED): S.FAILED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.VALIDATED, E.CANCEL): S.CANCELLED,
    # entries that wait for their price
    (S.EXECUTING, E.ENTRY_WORKING): S.WORKING,
    (S.WORKING, E.ENTRY_FILLED): S.EXECUTING,
    (S.WORKING, E.CANCEL): S.CANCELLED,
    (S.WORKING, E.ENTRY_EXPIRED): S.EXPIRED,
    (S.WORKING, E.EXECUTION_FAILED): S.FAILED,
}


@pytest.mark.parametrize(("pair", "after"), EXPECTED_INTENT.items(), ids=lambda v: str(v))
def test_legal_intent_transition(pair, after):
    assert intent_sm.next_status(*pair) is after


ILLEGAL = [p for p in itertools.product(IntentStatus, IntentEvent) if p not in EXPECTED_INTENT]


@pytest.mark.parametrize("pair", ILLEGAL, ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_illegal_intent_transition_is_refused(pair):
    with pytest.raises(IllegalTransition, match=pair[0].value):
        intent_sm.next_status(*pair)


def test_table_is_exactly_the_specified_one():
    assert intent_sm.TRANSITIONS == EXPECTED_INTENT


@pytest.mark.parametrize("terminal", [S.EXECUTED, S.FAILED, S.CANCELLED, S.EXPIRED])
def test_terminal_states_accept_no_event(terminal):
    for event in IntentEvent:
        with pytest.raises(IllegalTransition, match="final"):
            intent_sm.next_status(terminal, event)


def test_terminal_set_is_exactly_the_states_without_a_way_out():
    assert intent_sm.TERMINAL == {s for s in IntentStatus if not any(f == s for f, _ in EXPECTED_INTENT)}


def test_a_working_entry_cannot_be_executed_again_nor_jump_to_executed():
    for event in (E.EXECUTION_STARTED, E.EXECUTION_SUCCEEDED, E.VALIDATION_PASSED, E.ENTRY_WORKING):
        with pytest.raises(IllegalTransition, match="WORKING -> "):
            intent_sm.next_status(S.WORKING, event)


def test_validated_cannot_jump_to_executed():
    with pytest.raises(IllegalTransition, match="VALIDATED -> execution_succeeded"):
        intent_sm.next_status(S.VALIDATED, E.EXECUTION_SUCCEEDED)


def test_operation_closes_cancels_or_is_left_as_dust_only_from_active():
    assert operation_sm.next_status(OperationStatus.ACTIVE, OperationEvent.CLOSE) is OperationStatus.CLOSED
    assert operation_sm.next_status(OperationStatus.ACTIVE, OperationEvent.CANCEL) is OperationStatus.CANCELLED
    assert operation_sm.next_status(OperationStatus.ACTIVE, OperationEvent.LEAVE_AS_DUST) is OperationStatus.DUST
    ended = [OperationStatus.CLOSED, OperationStatus.CANCELLED, OperationStatus.DUST]
    for status, event in itertools.product(ended, OperationEvent):
        with pytest.raises(IllegalTransition):
            operation_sm.next_status(status, event)
