"""Invariance measurements: statistics (pure numerics) and one module per command."""
