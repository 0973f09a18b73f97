"""deco-bench: reproduce and benchmark DeCo (frequency-decoupled pixel diffusion, arXiv 2511.19365)."""

__version__ = "0.1.0"
