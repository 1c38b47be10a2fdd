"""Helpers every tier, the benchmarks and the demo share: networks, PKI, data, checks."""
