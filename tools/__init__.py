"""Tools that work on this repository rather than ship with swinir (run from the repository root).

- :mod:`tools.campaign`: the bundled models' training campaign (``python -m tools.campaign``).

They build on swinir's public API; swinir never imports them (both are import-linter contracts).
"""
