"""Images from webdataset tar shards (the format TiTok and MARVEL train and evaluate ImageNet from).

Layout: ``<root>/<split>/*.tar`` (or ``<root>/*<split>*.tar``), each shard a plain tar whose
members are grouped into samples by key, webdataset's convention: the member's path up to the first
dot of its file name (``n01440764_10026.JPEG`` and ``n01440764_10026.cls`` are one sample). A
sample's image is its ``jpg``/``jpeg``/``png``/``webp`` member; other members are ignored.

Unlike webdataset's streaming reader, the shards are indexed once (tar headers only: offsets and
sizes) so items can be read by index: sharded evaluation, ``max_items`` subsets and exact resumes
need that. A shard that ends early (truncated copy) keeps the samples before the damage and is
named in a warning; an undecodable image is `Skipped` like a bad file in a folder.
"""

from __future__ import annotations

import io
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import BenchError
from .images import UNREADABLE, read_rgb, subset
from .items import Item, Skipped, sha256_text
from .transforms import preprocess

log = logging.getLogger("bench.data")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class Member:
    shard: Path
    name: str
    offset: int  # of the member's data in the shard
    size: int


def list_shards(root: Path, split: str) -> list[Path]:
    shards = sorted((root / split).glob("*.tar")) if (root / split).is_dir() else sorted(root.glob(f"*{split}*.tar"))
    if not shards:
        raise BenchError(f"no webdataset shards for split {split!r}: expected {root / split}/*.tar or {root}/*{split}*.tar")
    return shards


def index_shard(shard: Path) -> list[Member]:
    """The image member of every sample in ``shard``, in tar order."""
    images: dict[str, Member] = {}
    try:
        with tarfile.open(shard, mode="r:") as archive:
            for info in archive:
                directory, _, filename = info.name.rpartition("/")
                key, _, extension = filename.partition(".")
                if info.isfile() and extension.lower() in IMAGE_EXTENSIONS:
                    images.setdefault(f"{directory}/{key}", Member(shard, info.name, info.offset_data, info.size))
    except (tarfile.TarError, OSError) as error:
        log.warning("webdataset shard %s is damaged after %d samples (%s): the rest of it is not read", shard, len(images), error)
    return list(images.values())


class WebDatasetImages(Dataset):
    """The images of a split's shards, preprocessed to ``(3, resolution, resolution)`` in [-1, 1]."""

    def __init__(self, members: list[Member], resolution: int, preprocessing: str, center_crop: int | None = None):
        self.members = members
        self.resolution = resolution
        self.preprocessing = preprocessing
        self.center_crop = center_crop

    def __len__(self) -> int:
        return len(self.members)

    def source(self, index: int) -> str:
        member = self.members[index]
        return f"{member.shard}:{member.name}"

    def fingerprint(self) -> str:
        """Names the items: shard paths and sizes, member names and sizes."""
        shards = sorted({m.shard for m in self.members})
        return sha256_text("".join(f"{s}\t{s.stat().st_size}\n" for s in shards) + "".join(f"{m.name}\t{m.size}\n" for m in self.members))

    def __getitem__(self, index: int) -> Item:
        member = self.members[index]
        try:
            with open(member.shard, "rb") as handle:
                handle.seek(member.offset)
                data = handle.read(member.size)
            if len(data) != member.size:
                raise OSError(f"shard ends {member.size - len(data)} bytes early")
            image = read_rgb(io.BytesIO(data))
        except UNREADABLE as error:
            return Skipped(index, self.source(index), f"{type(error).__name__}: {error}")
        return preprocess(image, self.resolution, self.preprocessing, self.source(index), self.center_crop)


def webdataset_images(cfg, split: str) -> WebDatasetImages:
    if cfg.root is None:
        raise BenchError("suite.dataset.root is not set: point it at the folder holding the webdataset shards")
    members = [member for shard in list_shards(Path(cfg.root).expanduser(), split) for member in index_shard(shard)]
    if not members:
        raise BenchError(f"the {split} shards under {cfg.root} hold no images ({', '.join(IMAGE_EXTENSIONS)})")
    return WebDatasetImages(subset(members, cfg.max_items), cfg.resolution, cfg.preprocessing, cfg.center_crop)
