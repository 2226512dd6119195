"""Labels from either MMAction2 API (``gt_label`` on 1.2, ``gt_labels.item`` on 1.0/1.1)."""
from __future__ import annotations

import torch


def fine_labels(data_samples: list) -> torch.Tensor:
    """The fine label of each sample, as one int64 tensor."""
    return torch.cat([(sample.gt_label if 'gt_label' in sample else sample.gt_labels.item)
                      .reshape(-1) for sample in data_samples]).long()

#: The fork's grouping of its 52 actions into 7 coarse classes (also in hierarchy52.json).
GROUP_SIZES = (8, 8, 8, 8, 8, 6, 6)
COARSE_OF_FINE = tuple(group for group, size in enumerate(GROUP_SIZES) for _ in range(size))
