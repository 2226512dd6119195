"""The guard's few exception types; each maps to one exit code of the CLI."""
from __future__ import annotations


class GuardError(Exception):
    """The guard cannot run: the config, the arguments or the device is unusable.

    The message is a one-line diagnosis a person can act on. The CLI exits
    with status 2 on it.
    """


class ConfigError(GuardError):
    """The config file cannot be read, parsed or built into a model."""


class SizeError(GuardError):
    """The synthetic batch's sizes cannot be fed to the model as configured."""
