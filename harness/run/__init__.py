"""Running checks: the engine (the one way a set of checks is run, by the worker, the
launcher's ranks and the pytest plugin alike), the supervisor and the worker process it
can always stop, and the launcher for a torchrun job.

Layer 6: imports every layer below it; nothing below imports it.
"""
