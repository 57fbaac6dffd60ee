"""Fuzz targets: one module per parser, shared by the atheris harnesses (``tests/fuzz``)
and the hypothesis properties and crasher replays (``tests/unit/*/test_fuzz_regressions_*``).

Each module exposes ``one_input(data: bytes) -> None``: it feeds ``data`` to the parser
and lets only the parser's own typed rejection pass; anything else (another exception, or
an accepted input that breaks an invariant) escapes and is a crash. ``seeds()`` yields
valid inputs for a starting corpus.
"""
