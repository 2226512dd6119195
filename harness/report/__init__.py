"""What a run found and how it is told: check results, the root cause several failures
follow from, the console, JSON/JUnit files, the HTML picture of the data flow, snapshots.

Layer 1: imports only :mod:`epam_guard.contract`. Reports are made of plain data, so
they never import torch or the model.
"""
