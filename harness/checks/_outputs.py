"""Where a short real run may write: into its own folder, and nowhere the config names.

Two halves. :func:`redirect_outputs` points every output location MMEngine
knows in a config copy into the check's folder: the visualizer's and each
backend's ``save_dir`` (tracking services such as Weights & Biases or MLflow
are swapped for a ``LocalVisBackend``), hooks' ``out_dir``, loggers' and
evaluators' dump files (``DumpResults.out_file_path``), and any other
``*_dir``/``*_file``/``*_path`` value that names a place outside; ``load_from``
and ``resume`` are switched off (the real run's checkpoint is neither read nor
resumed). :func:`watched_writes` then holds the run to it: it lists the
current directory, the config's folder and every folder the config names
before and after, and records the paths this process changes from Python
(:func:`epam_guard.probe.isolation.recorded_writes`).

Every part the guard builds from the user's config goes through the same
redirection: a ``Runner`` (``runner``, ``ddp``, launcher mode) through
:func:`redirect_outputs` on its config copy, and the evaluators and hooks the
fast checks build on their own (``structure`` runs ``val_evaluator``, which
may hold a ``DumpResults``) through :func:`outputs_redirected`.

A change is blamed on the run only on that evidence: a path this process
wrote, renamed or removed outside its folder, and still changed afterwards.
Changes under watched folders that this process did not make (another
process: an editor, a second guard run in the same directory, or native code
such as ``torch.save``) are reported apart, never as the run's stray writes.
Any guard's own temporary folders (``epam-guard-*``) are nobody's stray writes.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..probe.isolation import recorded_writes

#: Prefix of every temporary folder a guard run makes (the CLI's and each check's).
GUARD_PREFIX = 'epam-guard-'
#: Keys whose value is a folder a run writes into (hooks, visualizers, loggers, metrics).
OUTPUT_DIRS = frozenset({'out_dir', 'save_dir', 'log_dir', 'logdir', 'output_dir', 'collect_dir',
                         'tmpdir', 'result_dir', 'results_dir', 'save_path', 'dump_path'})
#: Keys whose value is a file a run writes (``DumpResults``, metrics' dump prefixes).
OUTPUT_FILES = frozenset({'out_file', 'out_file_path', 'outfile_prefix', 'log_file'})
#: Endings of keys that name a place; redirected when they point outside (absolute or ``..``).
PLACE_ENDINGS = ('_dir', '_file', '_path', '_prefix')
#: Top-level keys that are inputs (the model, the data, which the check swaps itself).
INPUTS = frozenset({'model', 'train_dataloader', 'val_dataloader', 'test_dataloader',
                    'custom_imports', 'load_from', 'resume', 'work_dir'})
#: Keys that name what a run reads (annotations, data, weights): never redirected.
INPUT_KEY = re.compile(r'ann_file.*|data_root|data_prefix|pretrained|checkpoint|load_from|'
                       r'resume_from')
#: Visualizer backends that write only under their ``save_dir``; others report to services.
LOCAL_BACKENDS = frozenset({'LocalVisBackend', 'TensorboardVisBackend'})
#: Arguments that would send a redirected output to a remote file backend.
REMOTE_ARGS = ('backend_args', 'file_client_args')
#: Folder names never counted as stray writes (caches tools keep there).
IGNORED = frozenset({'__pycache__', '.git', '.pytest_cache', '.mypy_cache', '.ruff_cache',
                     '.tox', '.cache'})
#: Paths listed at most per watched folder, so a huge folder stays cheap.
MAX_LISTED = 20_000
#: Names MMEngine gives its outputs: an unexplained change by such a name deserves a warning.
RUN_OUTPUT_NAME = re.compile(r'(\d{8}_\d{6}|vis_data|vis_image|scalars\.json|config\.py|'
                             r'last_checkpoint|.*\.pth|.*\.log|.*\.log\.json|events\.out\..*)')


def _slug(dotted: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '_', dotted).strip('._') or 'output'


def _outside(value: str) -> bool:
    return os.path.isabs(os.path.expanduser(value)) or '..' in Path(value).parts


def _entries(node: Any, dotted: str) -> Iterator[tuple[Any, Any, str]]:
    """``(container, key, dotted name)`` for every assignable entry below ``node``."""
    if isinstance(node, Mapping):
        items: Any = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        name = f'{dotted}.{key}' if dotted else str(key)
        yield node, key, name
        yield from _entries(value, name)


def _backend_name(backend: Any) -> str:
    kind = backend.get('type') if isinstance(backend, Mapping) else type(backend)
    return getattr(kind, '__name__', str(kind))


def local_backends(cfg: Any) -> list[str]:
    """Swap visualizer backends that report to a service for ``LocalVisBackend``; their names."""
    visualizer = cfg.get('visualizer')
    if not isinstance(visualizer, dict) or not visualizer.get('vis_backends'):
        return []
    backends = visualizer['vis_backends']
    if isinstance(backends, Mapping):
        backends = visualizer['vis_backends'] = [backends]
    replaced = []
    for index, backend in enumerate(list(backends)):
        name = _backend_name(backend)
        if name not in LOCAL_BACKENDS:
            backends[index] = dict(type='LocalVisBackend')
            replaced.append(name)
    return replaced


def redirect_outputs(cfg: Any, folder: Path) -> dict[str, Any]:
    """Point every output location in ``cfg`` (edited in place) under ``folder``.

    Returns:
        dict: ``redirected`` (dotted key -> the value it had), ``replaced``
        (visualizer backends swapped for ``LocalVisBackend``), ``dropped``
        (remote file-backend arguments removed) and ``ignored`` (``load_from``
        and ``resume`` as the config had them, when set).
    """
    ignored = {key: cfg.get(key) for key in ('load_from', 'resume') if cfg.get(key)}
    cfg.load_from, cfg.resume = None, False
    replaced = local_backends(cfg)
    redirected: dict[str, Any] = {}
    dropped: list[str] = []
    for section in [key for key in cfg if key not in INPUTS]:
        for container, key, dotted in list(_entries({section: cfg[section]}, '')):
            if isinstance(container, Mapping) and key not in container:
                continue  # under remote backend arguments dropped just before
            value = container[key]
            if not isinstance(value, (str, os.PathLike)) or not str(value) or \
                    not isinstance(key, str) or INPUT_KEY.fullmatch(key):
                continue
            text = os.fspath(value)
            if key in OUTPUT_DIRS:
                target = folder / _slug(dotted)
            elif key in OUTPUT_FILES or (key.endswith(PLACE_ENDINGS) and _outside(text)):
                target = folder / _slug(dotted) / (Path(text).name or 'output')
            else:
                continue
            container[key] = str(target)
            redirected[dotted] = text
            parent = dotted.rsplit('.', 1)[0]
            for remote in REMOTE_ARGS:
                if remote in container:
                    del container[remote]
                    dropped.append(f'{parent}.{remote}')
    return {'redirected': redirected, 'replaced': replaced, 'dropped': dropped,
            'ignored': ignored}


@contextlib.contextmanager
def outputs_redirected(cfg: Any) -> Iterator[Any]:
    """A copy of ``cfg`` with every output location in a fresh guard folder, removed after.

    For building the config's parts outside a ``Runner`` (an evaluator, a hook):
    what they write lands in the folder, never where the config points.
    """
    folder = Path(tempfile.mkdtemp(prefix=f'{GUARD_PREFIX}outputs-'))
    try:
        safe = copy.deepcopy(cfg)
        redirect_outputs(safe, folder)
        yield safe
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, (str, os.PathLike)):
        yield os.fspath(node)
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _strings(value)


def named_folders(cfg: Any, cwd: Path) -> list[Path]:
    """Existing folders the config names: a path-like string, or its parent where that exists."""
    folders: dict[Path, None] = {}
    as_dict = getattr(cfg, 'to_dict', None)  # an MMEngine Config is not a Mapping
    for text in _strings(as_dict() if callable(as_dict) else cfg):
        if not text or len(text) > 1024 or '://' in text or any(c in text for c in '\n\0'):
            continue
        path = Path(os.path.expanduser(text))
        path = Path(os.path.abspath(path if path.is_absolute() else cwd / path))
        try:
            folder = path if path.is_dir() else path.parent if path.parent.is_dir() else None
        except OSError:
            continue
        if folder is not None and folder != Path(folder.anchor):
            folders[folder] = None
    return list(folders)


def listing(folders: list[Path], depth: int = 2) -> tuple[dict[str, Any], bool]:
    """Paths (to ``depth`` levels) under ``folders``: ``(mtime_ns, size)`` for files, ``None`` for
    folders; and whether a folder had more than :data:`MAX_LISTED` entries (listed partly)."""
    seen: dict[str, Any] = {}
    truncated = False
    for top in folders:
        frontier, count = [(top, 0)], 0
        while frontier:
            folder, level = frontier.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name in IGNORED:
                    continue
                count += 1
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        seen[entry.path] = None
                        if level + 1 < depth:
                            frontier.append((Path(entry.path), level + 1))
                    else:
                        stat = entry.stat(follow_symlinks=False)
                        seen[entry.path] = (stat.st_mtime_ns, stat.st_size)
            if count >= MAX_LISTED:
                truncated = True
                break
    return seen, truncated


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Paths new, removed, or (files) with another mtime or size."""
    return sorted(path for path in set(before) | set(after)
                  if path not in before or path not in after or before[path] != after[path])


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@dataclass
class Writes:
    """What :func:`watched_writes` found.

    Attributes:
        watched: the folders listed before and after.
        strays: paths outside the run's folder that this process changed and that stay changed
            (``' (removed)'`` appended for a removed one).
        elsewhere: paths under the watched folders changed by someone else (another process,
            or native code of this one); not the run's stray writes.
        truncated: whether a watched folder was too large to list in full.
    """

    watched: list[str]
    strays: list[str] = field(default_factory=list)
    elsewhere: list[str] = field(default_factory=list)
    truncated: bool = False

    def elsewhere_like_outputs(self) -> list[str]:
        """Unexplained changes named like a run's outputs (checkpoints, logs, scalars)."""
        return [p for p in self.elsewhere if RUN_OUTPUT_NAME.fullmatch(Path(p).name)]


class _Scope:
    """Which paths matter: not the run's own folder, any guard's temp folders, or caches."""

    def __init__(self, own: Path, watched: list[Path]) -> None:
        self.own = os.path.abspath(own)
        self.watched = [os.path.abspath(w) for w in watched]
        home = os.path.expanduser('~')
        self.system = [os.path.abspath(p) for p in (
            '/dev', '/proc', '/sys', tempfile.gettempdir(),
            os.environ.get('XDG_CACHE_HOME') or os.path.join(home, '.cache'))]

    def guard_owned(self, path: str) -> bool:
        parts = Path(path).parts
        for index, part in enumerate(parts):
            if part in IGNORED:
                return True
            if part.startswith(GUARD_PREFIX):
                prefix = str(Path(*parts[:index + 1]))
                # a guard folder that holds a watched folder (a run started inside one) counts
                if not any(_within(w, prefix) for w in self.watched):
                    return True
        return False

    def counts(self, path: str) -> bool:
        """Whether a change to ``path`` made by this run is a stray write."""
        if _within(path, self.own) or self.guard_owned(path):
            return False
        if any(_within(path, w) for w in self.watched):
            return True
        return not any(_within(path, s) for s in self.system)


def attribute(before: dict[str, Any], after: dict[str, Any], recorded: list[tuple[str, str]],
              scope: _Scope) -> tuple[list[str], list[str]]:
    """Split changes into this process's stray writes and changes made elsewhere."""
    strays: dict[str, None] = {}
    created: set[str] = set()
    for change, path in recorded:
        if change == 'write':
            created.add(path)
        if not scope.counts(path):
            continue
        if change == 'remove':
            # removing what the run itself made is cleaning up; anything else is lost work
            if not any(_within(path, made) for made in created) and not os.path.lexists(path):
                strays[f'{path} (removed)'] = None
        elif os.path.lexists(path) or path in before:
            strays[path] = None
    touched = [path for _, path in recorded]
    elsewhere = [path for path in changed(before, after)
                 if not scope.guard_owned(path) and not _within(path, scope.own)
                 and not any(_within(path, t) or _within(t, path) for t in touched)]
    return list(strays), elsewhere


@contextlib.contextmanager
def watched_writes(folders: list[Path], own: Path) -> Iterator[Writes]:
    """Watch ``folders`` (and every path this process changes) while the body runs.

    ``own`` is the run's folder, where it may write. The yielded
    :class:`Writes` is filled in when the body ends, also when it raises.
    """
    unique = list(dict.fromkeys(Path(os.path.abspath(f)) for f in folders))
    writes = Writes([str(f) for f in unique])
    scope = _Scope(own, unique)
    before, truncated = listing(unique)
    try:
        with recorded_writes() as recorded:
            yield writes
    finally:
        after, truncated_after = listing(unique)
        writes.truncated = truncated or truncated_after
        writes.strays, writes.elsewhere = attribute(before, after, recorded, scope)
