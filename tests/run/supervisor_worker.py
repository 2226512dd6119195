"""A stand-in for ``epam_guard.run.worker`` that misbehaves on demand (no torch: starts in ms).

The spec's ``behaviour`` maps a check name to what the "check" does: ``pass``,
``spin`` (a busy loop), ``exit0`` (``os._exit(0)``), ``segfault`` (reads
address 0 through ctypes), ``sleeper`` (starts a grandchild in a session of
its own, as torchrun does with its ranks, records its pid, then spins); ``build: spin``
spins in the build, before the first check.
"""
from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import subprocess
import sys
from pathlib import Path


def spin_in_model_code() -> None:
    while True:
        pass


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[0]).read_text())
    events = os.fdopen(int(argv[1]), 'w', buffering=1)
    fault = open(spec['fault_file'], 'w')  # noqa: SIM115
    faulthandler.enable(file=fault, all_threads=True)
    faulthandler.register(10, file=fault, all_threads=True)  # SIGUSR1

    def emit(**event: object) -> None:
        events.write(json.dumps(event) + '\n')

    if spec['behaviour'].get('build') == 'spin':  # model code that never returns in __init__
        emit(event='phase', name='build')
        spin_in_model_code()
    emit(event='ready', header={'timings': {}})
    for name in spec['checks']:
        emit(event='start', check=name)
        what = spec['behaviour'].get(name, 'pass')
        if what == 'spin':
            spin_in_model_code()
        elif what == 'exit0':
            os._exit(0)
        elif what == 'segfault':
            ctypes.string_at(0)
        elif what == 'sleeper':
            child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],
                                     start_new_session=True)
            Path(spec['pid_file']).write_text(str(child.pid))
            spin_in_model_code()
        emit(event='result', result={'name': name, 'status': 'pass', 'verdict': 'ok',
                                     'findings': [], 'details': {}, 'seconds': 0.0,
                                     'warnings': []})
    emit(event='done')


if __name__ == '__main__':
    main(sys.argv[1:])
