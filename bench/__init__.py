"""Benchmarks: each prints its figure and the ceiling it is held to."""
