"""slipway's benchmarks: ``python -m bench`` (see docs/benchmarks.md).

Importing this package does nothing; :mod:`bench.__main__` runs the suite.
"""
