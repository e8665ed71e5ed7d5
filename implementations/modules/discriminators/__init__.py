"""Discriminators for the GAN terms of tokenizer training, one file per family; each registers
itself (`implementations.registry.register_discriminator`) and returns a `DiscriminatorOutput`."""

from . import audio  # noqa: F401
from . import patchgan  # noqa: F401
from . import stylegan  # noqa: F401
