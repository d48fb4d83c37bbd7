"""IMM, the Inference Model Manager."""

__version__ = "0.1.0"
