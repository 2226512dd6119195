"""``epam-guard bisect``: find the commit that broke a rule, with ``git bisect run`` in a
temporary worktree, one supervised guard run per commit.

A front end (layer 7), beside :mod:`epam_guard.cli`.
"""
