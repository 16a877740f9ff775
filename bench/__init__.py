"""Benchmarks, run by hand (``python -m bench``), never by CI."""
