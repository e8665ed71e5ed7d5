"""``python -m bench.perf quantizers|train|eval|models [--quick] [--json] ...``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    from . import eval as evaluation
    from . import models, quantizers, train

    suites = {"quantizers": quantizers, "train": train, "eval": evaluation, "models": models}
    for name, module in suites.items():
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return suites[args.suite].main(args)


if __name__ == "__main__":
    sys.exit(main())
