"""Compare two test runs' `pytest --durations=0` outputs on the tests both have, matched by name.

    pytest -q -n 2 -m "not integration and not container and not model" tests --durations=0 > before.txt
    (... the other checkout, same command, same machine, back to back ...) > after.txt
    python scripts/compare_durations.py before.txt after.txt

A test's time is its setup, call and teardown; its name drops the file, so a test that moved
between folders still matches. The whole-suite totals are printed too.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict

LINE = re.compile(r"([\d.]+)s (setup|call|teardown)\s+(\S+)")


def seconds_by_test(path: str) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    with open(path) as lines:
        for line in lines:
            if match := LINE.match(line):
                seconds[match[3].split("::", 1)[-1]] += float(match[1])
    return seconds


def main(before_path: str, after_path: str) -> None:
    before, after = seconds_by_test(before_path), seconds_by_test(after_path)
    both = before.keys() & after.keys()
    was, now = sum(before[t] for t in both), sum(after[t] for t in both)
    print(f"{len(both)} tests in both: {was:.1f} s -> {now:.1f} s ({1 - now / was:.0%} less)")
    print(f"all listed: {sum(before.values()):.1f} s ({len(before)} tests) -> {sum(after.values()):.1f} s ({len(after)} tests)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
