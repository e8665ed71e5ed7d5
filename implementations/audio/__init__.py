"""Audio tokenizers (one file per family)."""

from . import encodec, soundstream  # noqa: F401  (registers the factories)
from . import vq_wav2vec  # noqa: F401  (registers the factories)
