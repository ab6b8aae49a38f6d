"""Parsl's retry budget as portaflow sets it: per-task retries, and one free try after a lost worker manager."""

from __future__ import annotations

from parsl.executors.high_throughput.errors import ManagerLost

from portaflow.engines.parsl_engine import retry_cost


def _fails_until_given_up(handler, budget: float, errors: list[BaseException], allowed: int) -> int:
    """How many tries a task gets, replaying Parsl's rule: retry while the summed cost stays <= the budget."""
    record = {"kwargs": {"portaflow_retries": allowed}}
    cost = 0.0
    for tries, error in enumerate(errors, start=1):
        cost += handler(error, record)
        if cost > budget:
            return tries
    return len(errors) + 1


def test_a_task_gets_exactly_its_own_retries():
    handler = retry_cost(max_retries=2)
    failure = RuntimeError("exit 3")
    assert _fails_until_given_up(handler, 2, [failure] * 5, allowed=0) == 1
    assert _fails_until_given_up(handler, 2, [failure] * 5, allowed=1) == 2
    assert _fails_until_given_up(handler, 2, [failure] * 5, allowed=2) == 3


def test_a_lost_manager_costs_nothing_once_then_counts():
    handler = retry_cost(max_retries=0)
    lost = ManagerLost(b"eb2ac2cb5ae8", "vm")
    assert _fails_until_given_up(handler, 0, [lost, RuntimeError("exit 3")], allowed=0) == 2  # lost, then its own failure
    assert _fails_until_given_up(handler, 0, [lost, lost], allowed=0) == 2  # a second loss is a failure
