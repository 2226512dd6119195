"""Headless Chromium driven over the DevTools protocol, for tests that look at a page.

Chromium (Debian's ``chromium`` package) is started with
``--remote-debugging-pipe``: commands go in on its file descriptor 3 and
answers come out on 4, as NUL-terminated JSON, so no port and no client
library is needed. :class:`Browser` opens one page, loads a file, evaluates
JavaScript in it (what the browser laid out, not the HTML text) and takes
full-page screenshots. Every wait is bounded; closing kills the browser and
every process it started, and reaps them.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: Names the browser has on the distributions the project runs on.
BINARIES = ('chromium', 'chromium-browser', 'google-chrome', 'chrome')
#: Seconds any one answer of the browser may take.
TIMEOUT = 60.0


def find_browser() -> str | None:
    """The path of an installed Chromium, or None."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    """The browser did not answer, or answered with an error."""


class Browser:
    """One headless page. Use as a context manager."""

    def __init__(self, binary: str, width: int = 1400, height: int = 900) -> None:
        self.binary = binary
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix='epam-guard-browser-')
        self._next = 0
        self._buffer = b''
        self.session: str | None = None

    def __enter__(self) -> Browser:
        import psutil

        self._children = {child.pid for child in psutil.Process().children()}
        to_browser, self._writer = os.pipe()
        self._reader, from_browser = os.pipe()

        def wire() -> None:  # in the child: the protocol's descriptors 3 and 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            # No sandbox: CI containers run as root; no /dev/shm: theirs is small.
            [self.binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
             '--remote-debugging-pipe', f'--user-data-dir={self.profile}', '--no-first-run',
             '--no-default-browser-check', '--hide-scrollbars', 'about:blank'],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        try:
            target = self.send('Target.createTarget', {'url': 'about:blank'})['targetId']
            self.session = self.send('Target.attachToTarget',
                                     {'targetId': target, 'flatten': True})['sessionId']
            self.viewport(self.width, self.height)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Chromium's helpers (zygote, crashpad) outlive a browser killed alone; where this
        # process is a subreaper (after a supervised CLI run) they are adopted here and stayed
        # as zombies. Children this process gained meanwhile are the browser's.
        import psutil

        from epam_guard.probe.processes import stop_tree

        stop_tree(self.process.pid)
        for adopted in psutil.Process().children():
            if adopted.pid not in self._children:
                stop_tree(adopted.pid)
        self.process.wait(timeout=10)
        for fd in (self._writer, self._reader):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)

    # ------------------------------------------------------------ protocol
    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command and return its result (events in between are dropped)."""
        self._next += 1
        message: dict[str, Any] = {'id': self._next, 'method': method, 'params': params or {}}
        if self.session is not None and not method.startswith('Target.'):
            message['sessionId'] = self.session
        os.write(self._writer, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self._read(deadline)
            if answer.get('id') == self._next:
                if 'error' in answer:
                    raise BrowserError(f'{method}: {answer["error"]}')
                return dict(answer.get('result', {}))

    def _read(self, deadline: float) -> dict[str, Any]:
        while b'\0' not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reader], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f'no answer from the browser within {TIMEOUT:.0f}s')
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise BrowserError('the browser closed the connection')
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b'\0')
        return dict(json.loads(message))

    # ------------------------------------------------------------ page
    def viewport(self, width: int, height: int) -> None:
        self.send('Emulation.setDeviceMetricsOverride',
                  {'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': False})

    def open(self, path: Path) -> None:
        """Load ``path`` and wait until the document is complete; then fit the viewport to
        the whole page, so every part of it is laid out and on screen."""
        self.send('Page.navigate', {'url': path.resolve().as_uri()})
        deadline = time.monotonic() + TIMEOUT
        while self.evaluate('document.readyState') != 'complete':
            if time.monotonic() > deadline:
                raise BrowserError(f'{path} did not finish loading')
            time.sleep(0.05)
        size = self.evaluate('[document.documentElement.scrollWidth, '
                             'document.documentElement.scrollHeight]')
        self.viewport(max(self.width, int(size[0])), int(size[1]))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        result = self.send('Runtime.evaluate', {'expression': expression,
                                                'returnByValue': True})
        if 'exceptionDetails' in result:
            raise BrowserError(f'{expression[:60]}...: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page as laid out."""
        data = self.send('Page.captureScreenshot', {'format': 'png'})['data']
        path.write_bytes(base64.b64decode(data))
        return path
