"""``python -m epam_guard``: the same as the ``epam-guard`` command."""
import sys

from .cli import main

sys.exit(main())
