"""Items of a real dataset, as they come out of its files: readable, readable with a note, or skipped.

A file dataset never raises on a bad file (one truncated JPEG must not end a run at image 31,415):
its ``__getitem__`` returns the tensor, a `Noted` tensor (e.g. an image smaller than the crop,
upsampled), or `Skipped` (the file could not be read, with the reason). `collate` turns a list of
items into a `Batch`, so DataLoader workers pass skips and notes back to the main process, and
`DataAccount` counts them over an evaluation like any other metric state: shards and DDP ranks
merge, the record states the counts and names the first skipped files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchmetrics import Metric

NOTES = ("upsampled", "padded")  # what a preprocessing mode did to an image smaller than its target


@dataclass(frozen=True)
class Skipped:
    """An item that could not be read: its ``index`` in the dataset, its ``source`` (file) and why."""

    index: int
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source} ({self.reason})"


@dataclass(frozen=True)
class Noted:
    """A readable item, ``x``, with a note from `NOTES` on how it was made."""

    x: Tensor
    note: str


Item = Tensor | Noted | Skipped


@dataclass
class Batch:
    """``x``: the readable items stacked ``(B, ...)``, or None when none was; ``skipped`` the others;
    ``notes`` how many of ``x`` carry each note."""

    x: Tensor | None
    skipped: list[Skipped] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)


def collate(items: list[Item]) -> Batch:
    readable = [item.x if isinstance(item, Noted) else item for item in items if not isinstance(item, Skipped)]
    notes: dict[str, int] = {}
    for item in items:
        if isinstance(item, Noted):
            notes[item.note] = notes.get(item.note, 0) + 1
    return Batch(torch.stack(readable) if readable else None, [item for item in items if isinstance(item, Skipped)], notes)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FileItems(Dataset):
    """A dataset of one item per file in ``self.paths``: its length, each item's source, and the
    fingerprint that names the items (every file's path and size)."""

    paths: list

    def __len__(self) -> int:
        return len(self.paths)

    def source(self, index: int) -> str:
        return str(self.paths[index])

    def fingerprint(self) -> str:
        """Names the items: every file's path and size (cached statistics of these items are reused)."""
        return sha256_text("".join(f"{path}\t{path.stat().st_size}\n" for path in self.paths))


def tensor_of(item: Item) -> Tensor | None:
    """The item's tensor, None when it was skipped."""
    if isinstance(item, Skipped):
        return None
    return item.x if isinstance(item, Noted) else item


def first_readable(dataset, indices) -> tuple[int, Tensor]:
    """``(index, tensor)`` of the first readable item among ``indices``; raises if none is."""
    skipped = []
    for index in indices:
        item = dataset[index]
        if not isinstance(item, Skipped):
            return index, tensor_of(item)
        skipped.append(item)
    from ..errors import BenchError

    raise BenchError(f"no readable item among the first {len(skipped)}: " + "; ".join(map(str, skipped[:3])))


class DataAccount(Metric):
    """What an evaluation read: items evaluated, items skipped (their indices, in order), and how many
    readable items carry each note. A metric so that shards and ranks merge like the others."""

    full_state_update = False
    protocol = "items: evaluated, skipped (unreadable files, named in the record), upsampled or padded by the preprocessing"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("evaluated", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("noted", torch.zeros(len(NOTES), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("skipped", [], dist_reduce_fx="cat")

    def update(self, batch: Batch) -> None:
        self.evaluated += 0 if batch.x is None else len(batch.x)
        for note, count in batch.notes.items():
            self.noted[NOTES.index(note)] += count
        if batch.skipped:
            self.skipped.append(torch.tensor([item.index for item in batch.skipped], dtype=torch.int64))

    def skipped_indices(self) -> list[int]:
        found = self.skipped if isinstance(self.skipped, list) else [self.skipped]
        return torch.cat(found).tolist() if found else []

    def compute(self) -> dict:
        """Counts ``evaluated``, ``skipped``, one per note, and ``skipped_indices`` (in dataset order)."""
        skipped = self.skipped_indices()
        return {"evaluated": int(self.evaluated), "skipped": len(skipped), **{note: int(count) for note, count in zip(NOTES, self.noted)},
                "skipped_indices": skipped}  # fmt: skip
