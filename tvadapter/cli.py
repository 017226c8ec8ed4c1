"""The ``tvadapter`` command line (placeholder until the client lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tvadapter`` console script."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        print("tvadapter demo: the client is not built yet.")
        return 0
    print("usage: tvadapter demo", file=sys.stderr)
    return 2
