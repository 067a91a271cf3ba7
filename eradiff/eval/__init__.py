"""Evaluation of erasure methods: triples, methods, metrics engine and reports (``eradiff eval``)."""
