"""Benchmarks: `make bench` runs each and prints its figures. Targets live here, not in unit tests."""
