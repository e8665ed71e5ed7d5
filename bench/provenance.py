"""Does a record follow its suite's protocol? The answer every leaderboard row shows.

A suite's protocol is what ``python -m bench.run suite=<suite> tokenizer=<tokenizer>`` runs with no
other overrides, at one of the suite's seeds. A record made with any measured field changed (see
`bench.records.NOT_MEASURED` for the fields that change nothing) deviates; its deviations read
``train.steps 30 vs 600``. Compared against the configs as they are now, so a record made before
the suite's protocol changed is marked too.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from .config import compose
from .records import measured_fields

CONF = Path(__file__).parent / "conf"


def configured(group: str, name: str) -> bool:
    return (CONF / group / f"{name}.yaml").is_file()


@lru_cache(maxsize=None)
def specified_config(suite: str, tokenizer: str | None) -> dict[str, Any]:
    """The resolved config of ``bench.run suite=<suite> [tokenizer=<tokenizer>]`` (seed left unset)."""
    overrides = [f"suite={suite}"] + ([f"tokenizer={tokenizer}"] if tokenizer else [])
    return OmegaConf.to_container(compose(overrides), resolve=True)


_ABSENT = object()


def _show(value: Any) -> str:
    return "unset" if value is _ABSENT else str(value)


def protocol_deviations(config: dict[str, Any]) -> list[str] | None:
    """How a record's config differs from its suite's protocol (``[]``: it follows it), or None when
    the suite is not configured here (nothing to compare with)."""
    suite, tokenizer = config["suite"]["name"], config["tokenizer"]["id"]
    if not configured("suite", suite):
        return None
    deviations = []
    if configured("tokenizer", tokenizer):
        specified = specified_config(suite, tokenizer)
        skip: tuple[str, ...] = ("seed",)
    else:
        specified = specified_config(suite, None)
        skip = ("seed", "tokenizer")
        deviations.append(f"tokenizer {tokenizer} has no config in bench/conf/tokenizer")
    mine, theirs = measured_fields(config, without=skip), measured_fields(specified, without=skip)
    for key in sorted(set(mine) | set(theirs)):
        here, there = mine.get(key, _ABSENT), theirs.get(key, _ABSENT)
        if here != there:
            deviations.append(f"{key.removeprefix('suite.')} {_show(here)} vs {_show(there)}")
    seeds = specified["suite"]["seeds"]
    if config["seed"] not in seeds:
        deviations.append(f"seed {config['seed']} not among the suite's seeds {','.join(map(str, seeds))}")
    return deviations
