"""Datasets: one module per dataset, plus the built-in procedural demo pool."""
