"""The bundled models' training campaign (``python -m tools.campaign``; usage in :mod:`.cli`).

One module per job, each importing only those listed after it (an import-linter contract):

- :mod:`.cli`: the command line (``run``, ``compare``, ``consider``, ``score``, ``measure``, ``complete``,
  ``report``, ``gpu-prepare``, ``gpu``, ``gpu-consider``);
- :mod:`.gpu`, :mod:`.compare`: a lent GPU's workflow; recipe comparisons at equal CPU time;
- :mod:`.training`: what the next slice of a model runs (resume or continue the shipped weights) and the
  campaign's rounds;
- :mod:`.shipping`, :mod:`.lanes`: measure a candidate and ship it only when better; child processes pinned
  to cores, slices counted in CPU time, stop signals;
- :mod:`.cards`: the model cards and the README table, from the manifest;
- :mod:`.policy`, :mod:`.measuring`, :mod:`.store`, :mod:`.crops`: the ship rules and training order; the
  ``swinir eval`` measurements; the manifest under its file lock (through :class:`swinir.bundled.BundledModel`);
  the real-JPEG crops of a card;
- :mod:`.bundles`: the bundle table (models, rows, targets) and the workspace.

It uses swinir's public API only, and swinir never imports it.
"""
