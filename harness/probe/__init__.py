"""Observing the model without changing it: recording calls, describing values, copying
state, finding non-finite values, naming the user's frames, and containing what a model
may do to the process (CUDA, threads, outputs, library homes, its processes).

Layer 2: imports :mod:`~epam_guard.contract` and :mod:`~epam_guard.report`.
"""
