"""Which frames of a stack are the user's: those outside the standard library, the guard
and the installed frameworks. Tracebacks and stack dumps name the user's innermost frame.
"""
from __future__ import annotations

import re
import sysconfig
from pathlib import Path

#: Installed packages whose frames are not the user's.
LIBRARIES = ('torch', 'mmengine', 'mmcv', 'mmaction', 'numpy', 'importlib_metadata',
             'epam_guard')
#: The guard's own package (``harness/`` in a checkout, ``epam_guard/`` installed).
GUARD = Path(__file__).resolve().parents[1]
STDLIB = Path(sysconfig.get_paths()['stdlib']).resolve()


def is_library_frame(filename: str) -> bool:
    """True for frames of the installed libraries, the standard library and the guard (a
    traceback's file names and a stack dump's alike; ``<frozen ...>`` and other generated
    code too)."""
    if filename.startswith('<'):
        return True
    path = Path(filename).resolve()
    if path.is_relative_to(GUARD):
        return True
    parts = path.parts
    for index, part in enumerate(parts[:-1]):
        if part in ('site-packages', 'dist-packages'):
            top = parts[index + 1].removesuffix('.py')
            return top in LIBRARIES or top.startswith('_')
    return path.is_relative_to(STDLIB)


FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def read_stack(path: Path) -> list[str]:
    """Frames of the last stack dump in ``path``, innermost first, as ``file:line in f``."""
    try:
        text = path.read_text(errors='replace')
    except OSError:
        return []
    blocks = re.split(r'\n(?=(?:Current thread|Thread) 0x)', text)
    dumps = [b for b in blocks if b.startswith(('Current thread', 'Thread'))]
    if not dumps:
        return []
    # The last dump; its main thread is the one the checks run on (listed last).
    last_dump = [b for b in dumps if 'most recent call first' in b]
    block = last_dump[-1] if last_dump else dumps[-1]
    return [f'{m["file"]}:{m["line"]} in {m["func"]}' for m in FRAME.finditer(block)]


def where(stack: list[str]) -> str:
    """The innermost frame worth showing: user code before library code."""
    for frame in stack:
        if not is_library_frame(frame.rsplit(':', 1)[0]):
            return frame
    return stack[0] if stack else 'an unknown place (no stack was written)'
