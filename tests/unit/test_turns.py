"""Turns: a few calls run, later ones wait first come first served, and a call whose turn would
come too late is refused at once with a retry hint."""

from __future__ import annotations

import threading
import time

import pytest

from serving.errors import REFUSED_KEY
from serving.grpc.turns import Shed, Turns

WAIT = 10.0  # upper bound for things that should happen at once


def _until(condition, timeout: float = WAIT) -> None:
    """Spin until ``condition()`` holds: synchronising on the observed state, not on a guess of time."""
    stop = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > stop:
            raise AssertionError("condition never held")
        time.sleep(0)


def test_free_turns_are_taken_without_waiting_then_given_back():
    turns = Turns("Rank", running=2, max_wait_s=0.0)
    assert turns.enter(None) == 0.0 and turns.enter(None) == 0.0
    with pytest.raises(Shed):  # both running, and waiting is off
        turns.enter(None)
    turns.leave(0.002)
    assert turns.enter(None) == 0.0


def test_waiting_calls_get_their_turn_in_arrival_order():
    turns = Turns("Rank", running=1, max_wait_s=WAIT)
    turns.enter(None)
    order: list[str] = []

    def call(name: str) -> None:
        turns.enter(None)
        order.append(name)
        turns.leave(0.001)

    first = threading.Thread(target=call, args=("first",))
    first.start()
    _until(lambda: turns.waiting == 1)
    second = threading.Thread(target=call, args=("second",))
    second.start()
    _until(lambda: turns.waiting == 2)
    assert order == []  # nobody runs while the turn is held
    turns.leave(0.001)
    first.join(WAIT)
    second.join(WAIT)
    assert order == ["first", "second"]
    assert turns.enter(None) == 0.0  # the last one gave it back


def test_a_call_whose_turn_does_not_come_within_the_longest_wait_is_refused():
    turns = Turns("Rank", running=1, max_wait_s=0.05)
    turns.enter(None)
    turns.leave(0.004)
    turns.enter(None)
    started = time.monotonic()
    with pytest.raises(Shed) as refused:
        turns.enter(None)
    assert time.monotonic() - started >= 0.05  # it did wait its budget first
    assert turns.waiting == 0  # and left the line
    assert "1 Rank calls running" in str(refused.value) and "no turn came in 50 ms" in str(refused.value)
    meta = dict(refused.value.trailing_metadata())
    assert meta[REFUSED_KEY] == "busy"
    assert meta["retry-after-ms"] == meta["grpc-retry-pushback-ms"] == "4"  # one 4 ms call ahead to clear


def test_a_call_refused_at_once_when_its_deadline_leaves_no_time_to_run():
    turns = Turns("Rank", running=1, max_wait_s=WAIT)
    turns.enter(None)
    turns.leave(0.5)  # calls have been taking half a second
    turns.enter(None)
    started = time.monotonic()
    with pytest.raises(Shed, match="deadline leaves no time"):
        turns.enter(0.3)
    assert time.monotonic() - started < WAIT / 2
    assert turns.waiting == 0


def test_the_deadline_bounds_the_wait_below_the_longest_wait():
    turns = Turns("Rank", running=1, max_wait_s=WAIT)
    turns.enter(None)
    turns.leave(0.01)
    turns.enter(None)
    with pytest.raises(Shed, match=r"no turn came in 4\d ms"):
        turns.enter(0.05)  # 50 ms left, 10 ms of it kept for running


def test_the_recent_run_time_is_a_running_average():
    turns = Turns("Rank", running=1, max_wait_s=0.0)
    turns.enter(None)
    turns.leave(0.010)
    assert turns.run_s == pytest.approx(0.010)
    turns.enter(None)
    turns.leave(0.020)
    assert 0.010 < turns.run_s < 0.020


def test_no_running_call_is_refused_as_a_setting_error():
    with pytest.raises(ValueError, match="at least 1 running call"):
        Turns("Rank", running=0, max_wait_s=0.1)
