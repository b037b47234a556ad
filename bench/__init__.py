"""Benchmarks, and the generated fraud population they and the tests run."""
