"""Run pytest and refuse to call an empty run green.

pytest exits 5 when it collects nothing; that must fail the build, not pass it.
"""

from __future__ import annotations

import sys

import pytest


def main() -> int:
    code = int(pytest.main(sys.argv[1:]))
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("run_pytest: no tests were collected; failing the run", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
