"""A model of what networks cost: measurement store, encodings, predictors, metrics, latency loss.

``latency`` imports ``spaces`` only (never ``devices`` or ``hwnas``).
"""
