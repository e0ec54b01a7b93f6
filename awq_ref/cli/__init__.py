"""The ``awq-harness`` console script: one parser, one module per subcommand.

Each subcommand module defines ``add_parser(subparsers)`` (which sets ``func``) and a
``run(args) -> int``. Errors the user can act on (``USER_ERRORS``) are printed as one
line with exit code 2; ``--debug`` shows the traceback of anything unexpected.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.primitives.device import DeviceError
from awq_harness.reports.schema import ResultsError

SUBCOMMANDS = ("quantize", "eval", "verify", "convert", "report", "plan", "kernels", "claims")
# reports has its own error class (it depends on no harness code), and so do the primitives (the lowest layer)
USER_ERRORS = (HarnessError, ResultsError, DeviceError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="awq-harness", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    parser.add_argument("--results-json", metavar="PATH",
                        help="also save what the command measured as a results file for 'awq-harness report'")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"awq_harness.awq_ref.cli.{name.replace('-', '_')}")
        except ModuleNotFoundError as err:
            if err.name != f"awq_harness.awq_ref.cli.{name}":
                raise
            continue  # a subcommand another issue has not delivered yet
        module.add_parser(sub)
    return parser


def _quiet_libraries() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bars say what is happening
    hf_logging.set_verbosity_error()


def _run_recording(args) -> int:
    if not args.results_json:
        return int(args.func(args) or 0)
    from awq_harness.reports.session import recording_to

    with recording_to(args.results_json):
        return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return _run_recording(args)
    except USER_ERRORS as err:
        print(f"awq-harness {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"awq-harness {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place that turns surprises into a line
        if args.debug:
            raise
        print(f"awq-harness {args.command}: internal error: {type(err).__name__}: {err} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
