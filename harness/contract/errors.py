"""The guard's few exception types; each maps to one exit code of the CLI."""
from __future__ import annotations

import signal
import traceback
from pathlib import Path


class GuardError(Exception):
    """The guard cannot run: the config, the arguments or the device is unusable.

    The message is a one-line diagnosis a person can act on. The CLI exits
    with ``exit_code`` on it: 2 (unusable input) unless a subclass says the
    model itself broke a rule (1).
    """

    exit_code = 2


class ConfigError(GuardError):
    """The config file cannot be read, parsed or built into a model."""


class SizeError(GuardError):
    """The synthetic batch's sizes cannot be fed to the model as configured."""


class StopRequested(BaseException):
    """A signal told the run to stop (SIGINT, SIGTERM, SIGHUP): never a check's own error.

    A ``BaseException``, so that model code's ``except Exception`` does not
    swallow it; the check runner lets it through too, and the run ends
    reported as interrupted, with exit status 128 + the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def one_line(exc: BaseException, location: bool = True) -> str:
    """``Type: first line (file.py:123)``, the location being the innermost frame."""
    lines = str(exc).strip().splitlines()
    text = f'{type(exc).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    frames = traceback.extract_tb(exc.__traceback__) if location else []
    return text + (f' ({Path(frames[-1].filename).name}:{frames[-1].lineno})' if frames else '')
