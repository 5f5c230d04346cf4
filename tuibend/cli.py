"""The ``tuibend`` command. Every fault a user can cause ends in one line naming it, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UserError(Exception):
    """A fault in what the user asked for: printed as one line, exit status 2."""


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its start-up chatter (absl, oneDNN notices) kept off the terminal.

    Those lines are written by C++ straight to file descriptor 2, so stderr is pointed
    at /dev/null for the duration of the import only.
    """
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            except ImportError as error:
                raise UserError(f"TensorFlow is not installed ({error}); run `make setup` or "
                                "`pip install -e '.[cpu]'`") from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_ddsp(args: argparse.Namespace) -> None:
    from tuibend.model.ddsp_import import import_ddsp

    path = import_ddsp(args.source, args.output, name=args.name, loudness=args.loudness)
    print(f"imported {args.source} -> {path}")


def _info(args: argparse.Namespace) -> None:
    from tuibend.model.decoder import point_widths
    from tuibend.model.store import load_model

    model = load_model(args.model)
    config = model.config
    n_params = sum(value.size for name, value in model.weights().items() if name != "reverb/ir")
    print(f"{config.name}: {n_params / 1e6:.2f} M decoder parameters, {config.sample_rate} Hz, "
          f"{config.frame_rate} frames/s, loudness {config.loudness}, reverb {'on' if config.reverb else 'off'}")
    if model.statistics.mean_pitch is not None:
        print(f"mean pitch of its training data: MIDI {model.statistics.mean_pitch:.1f}")
    widths = point_widths(config.decoder)
    print("bend points:")
    for point, description in model.bend_points.items():
        print(f"  {point:<12} {widths[point]:>5} units  {description}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuibend", description="A terminal instrument for bent DDSP timbre models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    importer = commands.add_parser("import-ddsp", help="convert a magenta-ddsp model folder into a tuibend model")
    importer.add_argument("source", help="folder with ckpt-N.*, operative_config-*.gin, dataset_statistics.pkl")
    importer.add_argument("-o", "--output", required=True, help="the tuibend model folder to write")
    importer.add_argument("--name", help="model name (default: the source folder's name)")
    importer.add_argument("--loudness", choices=["v1", "v3"],
                          help="loudness flavour the model was trained with (default: guessed from the gin)")
    importer.set_defaults(handler=_import_ddsp)

    info = commands.add_parser("info", help="describe a tuibend model: sizes, rates, bend points")
    info.add_argument("model", help="a tuibend model folder")
    info.set_defaults(handler=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import_tensorflow_quietly()
    except UserError as error:
        print(f"tuibend: error: {error}", file=sys.stderr)
        return 2
    from tuibend.model.config import ModelFormatError

    try:
        args.handler(args)
    except (UserError, ModelFormatError) as error:
        print(f"tuibend: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tuibend: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
