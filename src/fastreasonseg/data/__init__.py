"""Data: the synthetic digital-twin world (knowledge base, scenes, queries, programmatic teacher) and benchmark loaders.

Nothing heavy is imported here; import the submodules you need
(``fastreasonseg.data.synth``, ``fastreasonseg.data.items``, ``fastreasonseg.data.benchmarks``).
"""
