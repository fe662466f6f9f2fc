"""Experiments that chain every stage: the energy-vs-FLOPs study (the paper's Fig. 12)."""
