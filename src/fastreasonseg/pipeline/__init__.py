"""The segmentation pipeline: input -> twin (perception or file) -> engine -> answers -> masks -> outputs.

This is where ``frs segment``, ``frs serve`` and the demo meet the stages: the stages live
in their own packages (``perception/``, ``reasoning/``, ``twin/``); this package only wires
them and writes the files. Modules: :mod:`~.inputs` (load the twin and the picture behind
it, read query files), :mod:`~.segment` (run the queries, answer masks, result.json,
rollout.json; :func:`~.segment.segment_file` is the whole command), :mod:`~.overlay` (the
answer drawn on the picture with the reasoning beside it).
"""
