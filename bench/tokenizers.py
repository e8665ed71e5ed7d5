"""``python -m bench.tokenizers [--json]``: the registry as a table (or a JSON list of objects).

Models are built on the ``meta`` device, so listing even billion-parameter tokenizers costs no memory.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from tabulate import tabulate

from implementations import create_tokenizer, list_tokenizers, tokenizer_entry


def describe(name: str) -> dict[str, Any]:
    entry = tokenizer_entry(name)
    with torch.device("meta"):
        model = create_tokenizer(name)
    return {
        "name": name,
        "modality": model.modality,
        "family": model.family,
        "paper": model.paper,
        "parameters": sum(p.numel() for p in model.parameters()),
        "codebook_size": model.codebook_size,
        "num_codebooks": model.num_codebooks,
        "bits_per_token": model.bits_per_token,
        "input_shape": list(entry.input_shape),
        "token_grid": list(model.token_grid(entry.input_shape)),
        "official_weights": [w.url for w in entry.pretrained],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    args = parser.parse_args(argv)
    rows = [describe(name) for name in list_tokenizers()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    table = [
        {
            "name": r["name"],
            "modality": r["modality"],
            "family": r["family"],
            "params": f"{r['parameters'] / 1e6:.2f}M",
            "codebook": f"{r['codebook_size']} x {r['num_codebooks']}",
            "input": "x".join(map(str, r["input_shape"])),
            "tokens": "x".join(map(str, r["token_grid"])),
            "official weights": "yes" if r["official_weights"] else "no",
            "paper": r["paper"],
        }
        for r in rows
    ]
    print(tabulate(table, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
