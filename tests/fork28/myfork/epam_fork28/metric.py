"""The fork's AccMetric: MMAction2's, fusing RGB and pose whatever other scores there are."""
from __future__ import annotations

from mmaction.evaluation import AccMetric
from mmaction.registry import METRICS


@METRICS.register_module(name='AccMetric', force=True)
class ForkAccMetric(AccMetric):
    """Reports ``RGBPose_*`` (fused) for score dicts with ``rgb``, ``pose`` and more keys.

    MMAction2 1.2's own fuses only a dict of exactly those two keys; this
    fork's predictions also carry ``rgb_coarse`` and ``pose_coarse``.
    """

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if results and isinstance(results[0]['pred'], dict):
            pairs = [{'pred': {key: r['pred'][key] for key in ('rgb', 'pose')},
                      'label': r['label']} for r in results]
            metrics.update({key: value for key, value in super().compute_metrics(pairs).items()
                            if key.startswith('RGBPose')})
        return metrics
