"""Quantizers: one file per method, modality-agnostic, channel-last ``(..., dim)``.

Each module registers its class(es) with ``@register_quantizer``; build them by name with
``implementations.create_quantizer``.
"""

from .vector import VectorQuantizer
from .fsq import FiniteScalarQuantizer
from .lfq import LookupFreeQuantizer

__all__ = ["VectorQuantizer"]
