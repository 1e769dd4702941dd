"""Probes on frozen features: linear (logistic, ridge), k-NN and kernel ridge solvers with cross-validation."""
