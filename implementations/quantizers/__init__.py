"""Quantizers: one file per method, modality-agnostic, channel-last ``(..., dim)``.

Each module registers its class(es) with ``@register_quantizer``; build them by name with
``implementations.create_quantizer``.
"""

from .gumbel import GumbelQuantizer, gumbel_temperature
from .kmeans import HierarchicalKMeansQuantizer, kmeans
from .residual import ResidualQuantizer
from .vector import VectorQuantizer
from .fsq import FiniteScalarQuantizer
from .lfq import LookupFreeQuantizer

__all__ = ["GumbelQuantizer", "HierarchicalKMeansQuantizer", "ResidualQuantizer", "VectorQuantizer", "gumbel_temperature", "kmeans"]
