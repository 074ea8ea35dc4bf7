"""bench: train, distill, compress and benchmark BERT models on GLUE SST-2."""

__version__ = "0.1.0"
