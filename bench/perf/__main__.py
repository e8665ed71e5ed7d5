"""``python -m bench.perf quantizers [--quick] [--json] [--threads N]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    from . import quantizers

    quantizers.add_arguments(sub.add_parser("quantizers", help=quantizers.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    if args.suite == "quantizers":
        return quantizers.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
