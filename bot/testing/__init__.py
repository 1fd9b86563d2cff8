"""Local stand-ins for providers (no internet): used by the tests, benchmarks and demos."""
