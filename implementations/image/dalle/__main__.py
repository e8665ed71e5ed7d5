"""``python -m implementations.image.dalle convert --trust-pickle encoder.pkl decoder.pkl out.safetensors``:
the one-time, opt-in conversion of OpenAI's pickled dVAE modules to a safetensors file (`convert_pickles`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import TRUST_NOTE, convert_pickles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m implementations.image.dalle", description="DALL-E dVAE weights")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="pickled encoder.pkl + decoder.pkl -> one safetensors file", description=TRUST_NOTE + ".")
    convert.add_argument("--trust-pickle", action="store_true", help="allow unpickling the two files (required)")
    convert.add_argument("encoder_pkl")
    convert.add_argument("decoder_pkl")
    convert.add_argument("out", help="e.g. ~/.cache/torch/hub/checkpoints/dalle_dvae.safetensors")
    args = parser.parse_args(argv)
    if not args.trust_pickle:
        parser.error(f"{TRUST_NOTE}; pass --trust-pickle to convert them")
    print(convert_pickles(args.encoder_pkl, args.decoder_pkl, Path(args.out).expanduser(), trust_pickle=True))


if __name__ == "__main__":
    main()
