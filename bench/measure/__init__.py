"""Measurement primitives the measuring processes use: latency loops and statistics, memory sampling,
FLOPs, accuracy through the runtime, and the dev stream at batch 1."""
