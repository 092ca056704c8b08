# -*- coding: utf-8 -*-
# Copyright: unimon.stack developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Polling with capped exponential backoff, bounded by a deadline."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time


def until(check, timeout, first_delay=1.0, max_delay=10.0, clock=time.time, sleep=time.sleep):
    """Call check() until it returns (True, result) or the deadline passes; return (done, result, attempts).

    check() returns (done, result); the last result is returned either way, so a caller can report
    what was still missing when time ran out.
    """
    deadline = clock() + timeout
    delay = first_delay
    attempts = 0
    while True:
        attempts += 1
        done, result = check()
        if done or clock() + delay > deadline:
            return done, result, attempts
        sleep(delay)
        delay = min(delay * 2, max_delay)
