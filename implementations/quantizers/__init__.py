"""Quantizers: one file per method, modality-agnostic, channel-last ``(..., dim)``.

Each module registers its class(es) with ``@register_quantizer``; build them by name with
``implementations.create_quantizer``.
"""

from .vector import VectorQuantizer

__all__ = ["VectorQuantizer"]
