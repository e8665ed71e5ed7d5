"""``python -m bench.tokenizers [--archs] [--wide] [--json]``: what ``bench.run tokenizer=<name>`` accepts.

One row per tokenizer configuration (``bench/conf/tokenizer/<name>.yaml``): its architecture (a
registered factory), parameters, codebook, token grid and rate at the input it is run on (the
resolution of the suites that list it, else the architecture's default input), the suites that list
it, the recipe it trains by, and its weights (a checkpoint, the official weights of its architecture,
or trained by a suite).
``--archs`` lists the registered architectures with their default arguments instead.

Models are built on the ``meta`` device, so listing even billion-parameter tokenizers costs no memory.
A closed pipe (``| head``) ends the listing quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tabulate import tabulate

from implementations import create_tokenizer, list_tokenizers, tokenizer_entry

from .config import compose
from .errors import BenchError

CONF = Path(__file__).parent / "conf"


def describe_model(model, input_shape: tuple[int, ...]) -> dict[str, Any]:
    rate = model.rate(input_shape)
    return {
        "modality": model.modality,
        "family": model.family,
        "paper": model.paper,
        "parameters": sum(p.numel() for p in model.parameters()),
        "codebook_size": model.codebook_size,
        "num_codebooks": model.num_codebooks,
        "bits_per_token": model.bits_per_token,
        "input_shape": list(input_shape),
        "token_grid": rate["token_grid"],
        "rate": rate.get("kbps", rate.get("bits_per_pixel")),
        "rate_unit": "kbps" if "kbps" in rate else "bpp",
    }


def describe_arch(name: str) -> dict[str, Any]:
    entry = tokenizer_entry(name)
    with torch.device("meta"):
        model = create_tokenizer(name)
    return {"arch": name, **describe_model(model, entry.input_shape), "official_weights": [w.url for w in entry.pretrained]}


def suites_listing() -> dict[str, list[dict[str, Any]]]:
    """tokenizer config name -> the suites (name, input shape) whose ``tokenizers`` list it."""
    listing: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((CONF / "suite").glob("*.yaml")):
        suite = OmegaConf.load(path)
        dataset = suite.get("dataset", {})
        if "sample_rate" in dataset:  # audio: (channels, samples of one segment)
            shape = (dataset.get("channels", 1), round(dataset.sample_rate * (dataset.get("segment_seconds") or 1.0)))
        else:
            shape = (3, dataset.get("resolution", 32), dataset.get("resolution", 32))
        for name in suite.get("tokenizers", []):
            listing.setdefault(name, []).append({"suite": path.stem, "input_shape": shape})
    return listing


def describe_config(name: str, listed_in: list[dict[str, Any]]) -> dict[str, Any]:
    tok = compose([f"tokenizer={name}"]).tokenizer
    entry = tokenizer_entry(tok.arch)
    input_shape = listed_in[0]["input_shape"] if listed_in else entry.input_shape
    with torch.device("meta"):
        model = create_tokenizer(tok.arch, **OmegaConf.to_container(tok.kwargs, resolve=True))
    if tok.checkpoint:
        weights = f"checkpoint {tok.checkpoint}"
    elif tok.pretrained:
        weights = "released: " + ", ".join(w.filename for w in entry.pretrained)
    else:
        weights = "trained by its recipe"
    return {
        "name": name,
        "arch": tok.arch,
        **describe_model(model, input_shape),
        "suites": [s["suite"] for s in listed_in],
        "recipe": tok.recipe.name,
        "weights": weights,
    }


def config_names() -> list[str]:
    return sorted(path.stem for path in (CONF / "tokenizer").glob("*.yaml"))


def first_author(paper: str) -> str:
    """``"van den Oord et al. 2017, https://..."`` -> ``"van den Oord 2017"``."""
    citation = paper.split(",")[0]
    return citation.replace(" et al.", "")


def table(rows: list[dict[str, Any]], archs: bool, wide: bool) -> str:
    """The listing as text: every column as a markdown table when ``wide``, else the columns that
    tell tokenizers apart, fitting a 100-column terminal."""
    lines = []
    for r in rows:
        line = {"arch": r["arch"]} if archs else {"name": r["name"], "arch": r["arch"] if wide or r["arch"] != r["name"] else "="}
        line.update({
            "modality": r["modality"],
            "params": f"{r['parameters'] / 1e6:.3g}M",
            "codebook": f"{r['codebook_size']} x {r['num_codebooks']}",
            "input": "x".join(map(str, r["input_shape"])),
            "tokens": "x".join(map(str, r["token_grid"])),
            "rate": f"{r['rate']:.3g} {r['rate_unit']}",
        })  # fmt: skip
        if archs:
            weights = "yes" if r["official_weights"] else "no"
            line.update({"official weights": weights, "paper": r["paper"]} if wide else {"weights": weights, "paper": first_author(r["paper"])})
        else:
            line.update({"suites": ", ".join(r["suites"]) or "-", "recipe": r["recipe"] or "-",
                         "weights": r["weights"] if wide else r["weights"].split(":")[0].split(" ")[0]})  # fmt: skip
        if not wide:
            for column in ("modality", "input", "suites", "recipe"):
                line.pop(column, None)
        lines.append(line)
    if wide:
        return tabulate(lines, headers="keys", tablefmt="github")
    note = "--wide: modality, input, suites, recipe, weight files" + ("" if archs else "; arch '=': the architecture of the same name")
    return aligned(lines) + "\n" + note


def aligned(lines: list[dict[str, str]]) -> str:
    """Left-aligned columns two spaces apart under their headers."""
    keys = list(lines[0])
    widths = [max(len(key), *(len(line[key]) for line in lines)) for key in keys]
    rows = [keys, *[[line[key] for key in keys] for line in lines]]
    return "\n".join("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", action="store_true", help="list the registered architectures (factories) instead")
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--wide", action="store_true", help="every column, as a markdown table (default: fit 100 columns)")
    args = parser.parse_args(argv)
    try:
        if args.archs:
            rows = [describe_arch(name) for name in list_tokenizers()]
        else:
            listing = suites_listing()
            rows = [describe_config(name, listing.get(name, [])) for name in config_names()]
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        print(json.dumps(rows, indent=2) if args.json else table(rows, args.archs, args.wide), flush=True)
    except BrokenPipeError:  # the reader left (| head): stop quietly, as a Unix tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()
