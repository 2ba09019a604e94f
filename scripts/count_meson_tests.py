#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# count_meson_tests.py: counts passed/failed/skipped test cases of one `meson test` run, per gtest case where possible.
"""Usage: count_meson_tests.py BUILDDIR

Prints one line per meson test to stderr and, last on stdout, "PASSED FAILED SKIPPED".

Sources, both written by `meson test` in BUILDDIR/meson-logs/:
  testlog.json        one JSON object per meson test: its overall "result" (OK, FAIL, SKIP,
                      EXPECTEDFAIL, UNEXPECTEDPASS, TIMEOUT, ERROR, INTERRUPT) and its stdout.
  testlog.junit.xml   per-case results: meson copies in the XML report of tests declared with
                      protocol 'gtest' (suites named "<project>.<test>.<GTestSuite>") and lists the
                      subtests of 'tap' tests (suite "<project>.<test>").
Per meson test, cases are counted from the junit report when it has them, else from a libcheck
(gst-check) summary line "NN%: Checks: N, Failures: F, Errors: E" in its stdout, else the test
counts as one case. A test whose overall result is a failure (a crash after the last case, a
timeout, a leak report at exit) but has no failed case gets one extra failed case, so no failure
is ever hidden by per-case counting.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

FAILED_RESULTS = {"FAIL", "TIMEOUT", "ERROR", "INTERRUPT", "UNEXPECTEDPASS"}
CHECK_SUMMARY = re.compile(r"^\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)", re.M)


def load_tests(path):
    tests = []
    with open(path, encoding="utf-8", errors="replace") as log:
        for line in log:
            line = line.strip()
            if line:
                tests.append(json.loads(line))
    return tests


def junit_cases(path, test_names):
    """Maps meson test name -> list of 'pass' / 'fail' / 'skip', from the suites of gtest and tap tests."""
    cases = {}
    if not os.path.exists(path):
        return cases
    root = ET.parse(path).getroot()
    for suite in root.iter("testsuite"):
        suite_name = suite.get("name", "")
        project = suite_name.split(".", 1)[0]
        owner = None  # the longest test name such that the suite is "<project>.<test>" or "<project>.<test>.<x>"
        for name in test_names:
            base = f"{project}.{name}"
            if (suite_name == base or suite_name.startswith(base + ".")) and (owner is None or len(name) > len(owner)):
                owner = name
        if owner is None:
            continue
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                status = "fail"
            elif case.find("skipped") is not None or case.get("status") == "notrun":
                status = "skip"
            else:
                status = "pass"
            cases.setdefault(owner, []).append(status)
    return cases


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    logs = os.path.join(sys.argv[1], "meson-logs")
    json_path = os.path.join(logs, "testlog.json")
    if not os.path.exists(json_path):
        print(f"  no {json_path}: meson test did not run", file=sys.stderr)
        print("0 1 0")
        return 0
    tests = load_tests(json_path)
    per_test_cases = junit_cases(os.path.join(logs, "testlog.junit.xml"), [t["name"] for t in tests])

    total = [0, 0, 0]
    for test in tests:
        name, result = test["name"], test.get("result", "ERROR")
        cases = per_test_cases.get(name)
        if cases:
            counts = [cases.count("pass"), cases.count("fail"), cases.count("skip")]
            source = "case"
        else:
            match = CHECK_SUMMARY.search(test.get("stdout") or "")
            if match:
                checks, failures, errors = map(int, match.groups())
                counts = [checks - failures - errors, failures + errors, 0]
                source = "gst-check check"
            elif result == "SKIP":
                counts, source = [0, 0, 1], "test"
            elif result in FAILED_RESULTS:
                counts, source = [0, 1, 0], "test"
            else:
                counts, source = [1, 0, 0], "test"
        if result in FAILED_RESULTS and counts[1] == 0:
            counts[1] += 1  # the binary failed outside any case (crash, timeout, sanitizer report at exit)
        for i in range(3):
            total[i] += counts[i]
        print(f"  {result:<13} {name}: {counts[0]} passed, {counts[1]} failed, {counts[2]} skipped"
              f" (counted per {source})", file=sys.stderr)
    print(f"{total[0]} {total[1]} {total[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
