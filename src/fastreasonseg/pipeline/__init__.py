"""The segmentation pipeline: input -> twin (perception or file) -> engine -> answers -> masks -> outputs.

The stages live in their own packages (``perception/``, ``reasoning/``, ``twin/``); this package
only wires them and writes the files. Modules: :mod:`~.inputs` (check queries and pictures, load
the twin and the picture behind it, read query files), :mod:`~.segment` (run the queries, answer
masks, result.json, rollout.json), :mod:`~.overlay` (the answer drawn on the picture with the
reasoning beside it). The Python API (:mod:`fastreasonseg.api`) sits on top of it, and ``frs
segment``, ``frs serve`` and ``frs demo`` reach it through that API.
"""
