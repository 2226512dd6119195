"""The model under test: its config, the built recognizer and context, the synthetic batch
for its input kind and its sizes, memory estimates, compatibility fixes for MMAction2
releases, the diagnosis of a failed build, and one recorded forward pass.

Layer 3: imports :mod:`~epam_guard.contract`, :mod:`~epam_guard.report` and
:mod:`~epam_guard.probe`.
"""
