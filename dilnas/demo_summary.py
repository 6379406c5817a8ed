"""``python -m dilnas.demo_summary DEMO_DIR``: the closing summary of ``make demo`` (what the search found, how
good it is, where everything is; ``dilnas.analysis.demo_summary``)."""

from __future__ import annotations

import sys

from dilnas.analysis.demo_summary import demo_summary
from dilnas.utils.errors import UserError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dilnas.demo_summary DEMO_DIR", file=sys.stderr)
        return 2
    try:
        print(demo_summary(args[0]))
    except UserError as error:
        print(f"dilnas demo: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
