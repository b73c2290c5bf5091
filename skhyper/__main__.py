"""``python -m skhyper <command>``; the one command is ``compare``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

_USAGE = """usage: python -m skhyper compare [options]

commands:
  compare   run skhyper's detectors beside IsolationForest on one data set
            (python -m skhyper compare --help for the options)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m skhyper`` subcommands; return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE, end="")
        return 0 if args else 2
    if args[0] == "compare":
        from .compare import main as compare_main

        return compare_main(args[1:], prog="python -m skhyper compare")
    print(f"unknown command {args[0]!r}\n\n{_USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
