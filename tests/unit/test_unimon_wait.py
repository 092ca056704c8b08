"""Polling with capped backoff (plugins/module_utils/unimon_wait.py), on a clock the test drives."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def wait(collection_module):
    return collection_module("plugins.module_utils.unimon_wait")


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_done_at_once_never_sleeps(wait):
    t = FakeTime()
    assert wait.until(lambda: (True, "ok"), 30, clock=t.clock, sleep=t.sleep) == (True, "ok", 1)
    assert t.sleeps == []


def test_delays_double_up_to_the_cap_and_the_last_result_is_kept(wait):
    t = FakeTime()
    answers = iter([(False, "a"), (False, "b"), (False, "c"), (False, "d"), (False, "e"), (True, "f")])
    assert wait.until(lambda: next(answers), 100, first_delay=1, max_delay=5, clock=t.clock, sleep=t.sleep) == (True, "f", 6)
    assert t.sleeps == [1, 2, 4, 5, 5]


def test_gives_up_before_a_sleep_would_pass_the_deadline(wait):
    t = FakeTime()
    calls = []

    def check():
        calls.append(t.now)
        return False, "still missing %d" % len(calls)
    done, result, attempts = wait.until(check, 10, first_delay=1, max_delay=10, clock=t.clock, sleep=t.sleep)
    assert (done, result, attempts) == (False, "still missing 4", 4)
    assert t.sleeps == [1, 2, 4]          # 7 s slept; another 8 s would end after the 10 s deadline
    assert t.now - 1000.0 <= 10
