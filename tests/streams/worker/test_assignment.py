"""The worker's account of its partition assignment, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from streams.worker.app import AssignmentWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_wait_past_the_timeout_is_warned_once_and_reported_until_partitions_come(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    watch = AssignmentWatch(10.0, clock)
    caplog.set_level(logging.INFO, logger="streams.worker.app")
    clock.now += 9.5
    watch.check()
    assert not watch.overdue() and not caplog.records
    assert watch.health() == {
        "assigned": False,
        "partitions": 0,
        "waiting_for_partitions_seconds": 9.5,
        "assignment_timeout_seconds": 10.0,
    }
    clock.now += 1
    watch.check()
    watch.check()
    assert watch.overdue()
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING and "no partitions assigned after 10 s" in (
        warning.getMessage()
    )
    watch.assigned(3)
    assert watch.health()["assigned"] is True and not watch.overdue()
    assert watch.health()["waiting_for_partitions_seconds"] == 0.0
    assert "3 partition(s) assigned after 10 s" in caplog.records[-1].getMessage()
    # A rebalance that revokes everything starts a new wait, warned again past the timeout.
    watch.assigned(0)
    clock.now += 10
    watch.check()
    assert sum("no partitions" in r.getMessage() for r in caplog.records) == 2
