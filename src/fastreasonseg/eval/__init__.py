"""Evaluation: :mod:`.scoring` holds the one answer scorer shared by RL rewards, the teacher filter and results tables."""
