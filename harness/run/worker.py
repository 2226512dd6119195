"""The model side of a guard run: build the context, run the checks, report events.

Model code (the user's, not ours) runs here. The CLI normally runs this in a
child process it supervises (:mod:`epam_guard.run.supervisor`):
``python -m epam_guard.run.worker SPEC EVENT_FD`` reads the command from the JSON
file ``SPEC`` and writes one JSON event per line to the file descriptor
``EVENT_FD``. With ``--in-process`` the CLI calls :func:`session` directly.

Events, in order: ``phase`` (each step before the first check), ``ready``
(what was built: recipe, device, hierarchy, versions, timings, library homes),
then per check ``start``, ``progress`` (a check's own processes moved on) and
``result``, or ``text`` for ``trace``/``summary``; ``flow`` (the recorded data
flow, when the spec asks for a ``picture``); ``fatal`` when the config or model
is unusable;
``done`` at the end. A child that stops before ``done`` crashed or was
stopped; the supervisor says which check it was in.
"""
from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

Emit = Callable[[dict[str, Any]], None]

#: Signal the supervisor sends before stopping a hung child: dump every thread's stack.
DUMP_SIGNAL = getattr(signal, 'SIGUSR1', None)


def versions() -> dict[str, str | None]:
    """Versions of the guard and of the stack it runs on (absent ones are None)."""
    from importlib import import_module
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    try:
        found['epam-guard'] = version('epam-guard')
    except PackageNotFoundError:
        found['epam-guard'] = None
    for name in ('torch', 'mmengine', 'mmaction', 'mmcv', 'numpy'):
        try:
            found[name] = str(import_module(name).__version__)
        except Exception:  # absent, or its import fails: the report says so
            found[name] = None
    return found


def settings_from(data: dict[str, Any]) -> Any:
    """``GuardSettings`` from the CLI's option values (``{name: value}``)."""
    from ..model.context import GuardSettings

    return GuardSettings.from_namespace(SimpleNamespace(**data))


def header(ctx: Any, imports: float) -> dict[str, Any]:
    """What the report says about the run before any check: sizes, device, sources."""
    from dataclasses import asdict

    from ..model.batch import pass_sizes

    hierarchy = ctx.hierarchy
    return {
        'config': str(ctx.settings.config),
        'device': str(ctx.device),
        'recipe': asdict(ctx.recipe),
        'hierarchy': getattr(hierarchy, 'source', None),
        'contract': ctx.profile.name,
        'contract_reason': ctx.profile_reason,
        'size_note': getattr(ctx, 'size_note', None),
        'passes': pass_sizes(ctx.recipe),
        'timings': {'imports': imports, **ctx.timings},
        'versions': versions(),
    }


def _fatal(exc: BaseException) -> dict[str, Any]:
    from ..contract.errors import GuardError, one_line

    if isinstance(exc, GuardError):
        rule = getattr(exc, 'rule', None)
        return {'event': 'fatal', 'message': str(exc), 'exit': getattr(exc, 'exit_code', 2),
                'rule': str(rule) if rule is not None else None}
    return {'event': 'fatal', 'message': f'the guard could not start: {one_line(exc)}',
            'exit': 1, 'rule': None}


def _summary_text(ctx: Any) -> str:
    from ..checks.summary import parameter_table

    table = parameter_table(ctx)
    width = max(len(name) for name in table['parts'])
    lines = [f'  {name:<{width}}  {counts["params"]:>12,}  trainable {counts["trainable"]:>12,}'
             for name, counts in table['parts'].items()]
    lines.append(f'  {"total":<{width}}  {table["total"]:>12,}  trainable '
                 f'{table["trainable"]:>12,}  mult-adds {table["mult_adds"]:,}')
    return '\n'.join(lines)


def _emit_flow(ctx: Any, emit: Emit) -> None:
    """The recorded data flow for a picture (``--html``/``--dot``), or why there is none."""
    from ..contract.errors import one_line
    from ..trace.flow import flow

    try:
        emit({'event': 'flow', 'flow': flow(ctx)})
    except Exception as exc:  # a model that cannot even make the passes: said, not fatal
        emit({'event': 'flow', 'flow': None, 'reason': one_line(exc)})


def session(spec: dict[str, Any], emit: Emit) -> None:
    """Build the context ``spec`` describes and run its command, reporting through ``emit``.

    ``spec``: ``{'command': 'check'|'trace'|'summary', 'settings': {...}, 'checks': [...]}``,
    and from a supervisor restarting a run: ``fit`` (False: no size probe),
    ``recipe`` and ``size_note`` (what the first process decided). Library caches the
    home lacks go to a temporary folder from the first import on (YAPF writes its
    grammar cache when MMEngine's config module is imported): see
    :func:`epam_guard.probe.isolation.library_homes`; the header says what was created.
    """
    from ..probe.isolation import library_homes

    with library_homes() as homes:
        _session(spec, emit, homes)


def _session(spec: dict[str, Any], emit: Emit, homes: Any) -> None:
    start = time.perf_counter()
    try:
        import torch  # noqa: F401  (timed as the imports)

        from ..model.context import build_context
        from .engine import run_checks

        settings = settings_from(spec['settings'])
        preimport(settings.import_paths)
        imports = time.perf_counter() - start
        # Model code (the config's modules, the model's __init__) runs from here on: the
        # supervisor's --timeout applies, so a build that never returns is reported as one.
        emit({'event': 'phase', 'name': 'build'})
        ctx = build_context(settings, fit=False)
        if spec.get('recipe'):  # decided by an earlier process of the same run
            from ..model.batch import BatchRecipe

            ctx.recipe = BatchRecipe(**spec['recipe'])
        if spec.get('size_note'):
            ctx.size_note = spec['size_note']
        fit = spec.get('fit', True) and ctx.settings.size == 'tiny'
        memory = spec.get('command', 'check') == 'check'
        if fit or memory:
            from ..model.context import settle_sizes

            # Model code runs from here on: the supervisor's per-check clock applies.
            emit({'event': 'phase', 'name': 'size probe'})
            probing = time.perf_counter()
            settle_sizes(ctx, fit=fit, memory=memory)  # the memory estimate first: seconds
            ctx.timings['fit'] = time.perf_counter() - probing
    except Exception as exc:  # whatever the config or model raises, one line
        emit(_fatal(exc))
        return
    emit({'event': 'ready', 'header': {**header(ctx, imports),
                                       'library_homes': homes.created()}})
    # A check whose own processes make progress (the ddp ranks) says so: the supervisor's
    # clock then bounds the time without progress, not a loaded machine's slowness.
    ctx.progress = lambda note: emit({'event': 'progress', 'note': note})
    command = spec.get('command', 'check')
    if command == 'check':
        run_checks(ctx, spec['checks'],
                   on_start=lambda name: emit({'event': 'start', 'check': name}),
                   on_result=lambda result: emit({'event': 'result',
                                                  'result': result.to_json()}))
        if spec.get('picture'):
            _emit_flow(ctx, emit)
    else:
        try:
            if command == 'trace':
                from ..trace.calls import trace

                text = trace(ctx)
                if spec.get('picture'):
                    _emit_flow(ctx, emit)
            else:
                text = _summary_text(ctx)
        except Exception as exc:
            emit(_fatal(exc))
            return
        emit({'event': 'text', 'text': text})
    emit({'event': 'done'})


def preimport(import_paths: list[str]) -> None:
    """Import MMAction2 (after ``--import-path``) before the clock of model code starts.

    The imports are the guard's start-up, not model code: on a loaded machine
    they must not count against ``--timeout``. Whatever fails here fails
    again, reported, in the build.
    """
    import contextlib

    from ..model.context import make_mmaction_importable, use_import_paths

    with contextlib.suppress(Exception):
        use_import_paths(import_paths)
        make_mmaction_importable()


def _writer(fd: int) -> Emit:
    stream = os.fdopen(fd, 'w', buffering=1, encoding='utf-8')

    def emit(event: dict[str, Any]) -> None:
        stream.write(json.dumps(event, default=str) + '\n')
        stream.flush()

    return emit


def main(argv: list[str]) -> None:
    """``python -m epam_guard.run.worker SPEC EVENT_FD [PARENT]``: one supervised session,
    then exit.

    ``PARENT`` is the supervisor's pid: the first act is to die with it.
    """
    from ..probe.lifeline import die_with_parent

    die_with_parent(int(argv[2]) if len(argv) > 2 else None)
    spec = json.loads(Path(argv[0]).read_text())
    fd = int(argv[1])
    os.set_inheritable(fd, False)  # ranks and other grandchildren never hold the channel
    fault = open(spec['fault_file'], 'w')  # noqa: SIM115 (open until the process ends)
    faulthandler.enable(file=fault, all_threads=True)
    if DUMP_SIGNAL is not None:
        faulthandler.register(DUMP_SIGNAL, file=fault, all_threads=True)
    session(spec, _writer(fd))
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is reported: skip the interpreter's teardown of torch (about a second).
    os._exit(0)


if __name__ == '__main__':
    main(sys.argv[1:])
