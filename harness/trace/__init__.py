"""The data flow of one pass, for debugging: each call with its inputs and outputs, where
the labels went and which calls break the routing rule, as text and as a graph.

Layer 5: imports the layers below it, :mod:`~epam_guard.checks` included (the trace marks
what the routing check judges).
"""
