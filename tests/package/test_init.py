"""``import epam_guard`` (and its pytest plugin) changes nothing in the importing process."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = '''
import json, os, sys, threading, warnings
before = (dict(os.environ), list(sys.path), [repr(f) for f in warnings.filters],
          threading.active_count())
import epam_guard, epam_guard.plugin
after = (dict(os.environ), list(sys.path), [repr(f) for f in warnings.filters],
         threading.active_count())
heavy = sorted(m for m in ('torch', 'mmengine', 'mmaction', 'numpy') if m in sys.modules)
print(json.dumps({'same': before == after, 'heavy': heavy,
                  'changed': sorted(k for k in after[0] if before[0].get(k) != after[0][k])}))
'''


def test_importing_the_package_and_its_plugin_changes_no_process_state():
    env_without = {'PATH': '/usr/bin:/bin'}  # nothing set that an import could keep
    out = subprocess.run([sys.executable, '-c', PROBE], capture_output=True, text=True,
                         check=True, timeout=60, env=env_without).stdout
    report = json.loads(out)
    assert report == {'same': True, 'heavy': [], 'changed': []}
