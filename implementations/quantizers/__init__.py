"""Quantizers: one file per method, modality-agnostic, channel-last ``(..., dim)``.

Each module registers its class(es) with ``@register_quantizer``; build them by name with
``implementations.create_quantizer``.
"""

from .fsq import FiniteScalarQuantizer
from .gumbel import GumbelQuantizer, gumbel_temperature
from .kmeans import HierarchicalKMeansQuantizer, kmeans
from .lfq import LookupFreeQuantizer
from .residual import ResidualQuantizer
from .vector import VectorQuantizer

__all__ = [
    "FiniteScalarQuantizer",
    "GumbelQuantizer",
    "HierarchicalKMeansQuantizer",
    "LookupFreeQuantizer",
    "ResidualQuantizer",
    "VectorQuantizer",
    "gumbel_temperature",
    "kmeans",
]
