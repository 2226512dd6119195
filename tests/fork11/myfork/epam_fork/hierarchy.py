"""The fork's own fine->coarse table (NTU-60: 60 actions in 8 groups)."""
from __future__ import annotations

GROUP_SIZES = (10, 10, 10, 10, 5, 5, 5, 5)
#: Coarse class of each fine class.
COARSE_OF_FINE = tuple(group for group, size in enumerate(GROUP_SIZES) for _ in range(size))
NUM_CLASSES = len(COARSE_OF_FINE)
NUM_COARSE_CLASSES = len(GROUP_SIZES)
