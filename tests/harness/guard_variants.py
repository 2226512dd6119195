"""Deliberately broken EPAM variants, registered under test-only names.

Each is a small subclass of the reference model with one defect of the family
the guard exists for. ``BROKEN`` maps a variant to the config overrides that
select it. Importing this module registers them (once).
"""
from __future__ import annotations

from typing import Any

import torch
from mmaction.evaluation import AccMetric
from mmaction.registry import METRICS, MODELS
from mmengine.structures import LabelData
from torch import nn

from epam.backbone import EPAMBackbone
from epam.head import EPAMHierarchicalHead
from epam.hierarchy import labels_from_samples
from epam.recognizer import EPAMRecognizer


def _register(cls: type) -> type:
    if cls.__name__ not in MODELS.module_dict:
        MODELS.register_module(module=cls)
    return cls


def _register_metric(cls: type) -> type:
    if cls.__name__ not in METRICS.module_dict:
        METRICS.register_module(module=cls)
    return cls


def _flatten(inputs: dict) -> tuple[torch.Tensor, torch.Tensor, int]:
    imgs, heat = inputs['imgs'], inputs['heatmap_imgs']
    return imgs.flatten(0, 1), heat.flatten(0, 1), imgs.shape[1]


# ------------------------------------------------------------ the seed defect
@_register
class GuardTestTwoFeatureBackbone(EPAMBackbone):
    """Returns ``(x_rgb, x_pose)`` only and takes no labels."""

    def forward(self, imgs, heatmap_imgs):  # type: ignore[override]
        x_rgb, x_pose, *_ = super().forward(imgs, heatmap_imgs)
        return x_rgb, x_pose


@_register
class GuardTestLabelsToHeadRecognizer(EPAMRecognizer):
    """Pushes ``gt``/``gt_coarse`` into ``cls_head.loss`` as keyword arguments."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        imgs, heat, views = _flatten(inputs)
        feats = self.backbone(imgs, heat)
        if test_mode or data_samples is None:
            return feats, {}
        gt = labels_from_samples(data_samples, imgs.device).repeat_interleave(views)
        return feats, dict(gt=gt, gt_coarse=self.hierarchy(gt))


@_register
class GuardTestPermissiveHead(EPAMHierarchicalHead):
    """Like MMAction2's ``BaseHead.loss``: forwards any keyword arguments to ``forward``."""

    def loss(self, feats, data_samples, **kwargs):
        scores = self(feats, **kwargs)
        return {'rgb_loss_cls': self.loss_cls(scores['rgb'], labels_from_samples(data_samples))}


# ------------------------------------------------------------ structure
@_register
class GuardTestAliasBackbone(EPAMBackbone):
    """Returns ``x_rgb`` itself as ``x_rgb1``: the FR loss sees the guided features."""

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        x_rgb, x_pose, _, x_pose1, gt, gt_coarse = super().forward(imgs, heatmap_imgs, gt,
                                                                   gt_coarse)
        return x_rgb, x_pose, x_rgb, x_pose1, gt, gt_coarse


@_register
class GuardTestNoEchoBackbone(EPAMBackbone):
    """Returns ``gt`` where ``gt_coarse`` belongs."""

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        out = super().forward(imgs, heatmap_imgs, gt, gt_coarse)
        return (*out[:5], gt)


@_register
class GuardTestFourScoreHead(EPAMHierarchicalHead):
    """Puts the coarse scores into ``pred_score`` too: AccMetric drops RGBPose_1:1."""

    def predict_by_feat(self, cls_scores, data_samples):
        samples = super().predict_by_feat(cls_scores, data_samples)
        for sample in samples:
            coarse = sample.pred_coarse_score
            sample.set_field({**sample.pred_score, 'rgb_coarse': coarse['rgb'],
                              'pose_coarse': coarse['pose']}, 'pred_score')
        return samples


# ------------------------------------------------------------ routing
@_register
class GuardTestInferenceLabelsRecognizer(EPAMRecognizer):
    """``predict`` copied from ``loss``: the labels reach the backbone at inference."""

    def predict(self, inputs, data_samples, **kwargs):
        feats, _ = self.extract_feat(inputs, data_samples=data_samples)
        return self.cls_head.predict(feats, data_samples)


# ------------------------------------------------------------ labels
def _relabel(data_samples: list, labels: torch.Tensor) -> list:
    samples = [sample.clone() for sample in data_samples]
    for sample, label in zip(samples, labels.tolist()):
        sample.set_gt_label(label)
    return samples


@_register
class GuardTestRebasingHead(EPAMHierarchicalHead):
    """Guesses 1-based annotations per batch: subtract 1 if the batch minimum is >= 1."""

    def loss(self, feats, data_samples, **kwargs):
        labels = labels_from_samples(data_samples, feats[0].device)
        if labels.min() >= 1:
            gt = feats[4] - 1
            feats = (*feats[:4], gt, self._require_hierarchy()(gt))
            data_samples = _relabel(data_samples, labels - 1)
        return super().loss(feats, data_samples, **kwargs)


@_register
class GuardTestOwnMappingHead(EPAMHierarchicalHead):
    """Derives coarse targets with a mapping of its own (``label // 8``)."""

    def loss(self, feats, data_samples, **kwargs):
        return super().loss((*feats[:5], feats[4] // 8), data_samples, **kwargs)


@_register
class GuardTestRebasingOwnMappingHead(GuardTestRebasingHead, GuardTestOwnMappingHead):
    """Two independent defects: batch-minimum re-basing and a ``label // 8`` coarse mapping."""


@_register
class GuardTestCrossSampleViewsHead(EPAMHierarchicalHead):
    """Averages views across the wrong axis: reads (N*V, C) as (V, N, C), mixing samples."""

    def predict_by_feat(self, cls_scores, data_samples):
        n = len(data_samples)
        v = cls_scores['rgb'].shape[0] // n
        mixed = {key: score.reshape(v, n, -1).transpose(0, 1).reshape(n * v, -1)
                 for key, score in cls_scores.items()}
        return super().predict_by_feat(mixed, data_samples)


@_register
class GuardTestPerClipPredictionsHead(EPAMHierarchicalHead):
    """Returns one prediction per clip (N*V) instead of one per input sample."""

    def predict_by_feat(self, cls_scores, data_samples):
        v = cls_scores['rgb'].shape[0] // len(data_samples)
        clips = [sample.clone() for sample in data_samples for _ in range(v)]
        return super().predict_by_feat(cls_scores, clips)


@_register
class GuardTestGroupMaskingHead(EPAMHierarchicalHead):
    """At inference, keeps only the fine scores of each sample's ground-truth coarse group,
    read from the data samples: validation accuracy then counts a free coarse answer."""

    def predict_by_feat(self, cls_scores, data_samples):
        clips = cls_scores['rgb'].shape[0] // len(data_samples)
        labels = labels_from_samples(data_samples, cls_scores['rgb'].device)
        fine_groups = self._require_hierarchy().fine_to_coarse.to(labels.device)
        groups = fine_groups[labels.clamp(0, self.num_classes - 1)]
        keep = (fine_groups[None] == groups[:, None]).repeat_interleave(clips, dim=0)
        masked = dict(cls_scores)
        for key in ('rgb', 'pose'):
            masked[key] = cls_scores[key].masked_fill(~keep, -1e4)
        return super().predict_by_feat(masked, data_samples)


@_register
class GuardTestClampingRecognizer(EPAMRecognizer):
    """'Cleans' out-of-range labels by clamping them into range, in the samples too."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        if data_samples is not None and not test_mode:
            labels = labels_from_samples(data_samples)
            clamped = labels.clamp(0, self.hierarchy.num_classes - 1)
            for sample, label in zip(data_samples, clamped.tolist()):
                sample.set_gt_label(label)
        return super().extract_feat(inputs, stage, data_samples, test_mode)


@_register
class GuardTestOneHotRecognizer(EPAMRecognizer):
    """One-hot encodes the labels first: a label out of range stops it with torch's own error,
    which does not name the label."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        if data_samples is not None and not test_mode:
            torch.nn.functional.one_hot(labels_from_samples(data_samples),
                                        self.hierarchy.num_classes)
        return super().extract_feat(inputs, stage, data_samples, test_mode)


# ------------------------------------------------------------ MMAction2 1.0/1.1 API
@_register
class GuardTestPredScoresHead(EPAMHierarchicalHead):
    """A 1.1-style head (no defect): ``pred_scores`` LabelData, ``hierarchy_*`` loss keys."""

    def loss(self, feats, data_samples, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        for stream in ('rgb', 'pose'):
            losses[f'hierarchy_loss_{stream}'] = losses.pop(f'{stream}_loss_tree')
        return losses

    def predict_by_feat(self, cls_scores, data_samples):
        samples = super().predict_by_feat(cls_scores, data_samples)
        for sample in samples:
            score = sample.pred_score
            del sample.pred_score
            sample.pred_scores = LabelData(rgb=score['rgb'], pose=score['pose'])
        return samples


@_register_metric
class GuardTestAccMetric11(AccMetric):
    """MMAction2 1.1's ``AccMetric.process``: reads ``pred_scores`` and ``gt_labels.item``."""

    def process(self, data_batch, data_samples):
        for sample in data_samples:
            pred = {key: value.cpu().numpy() for key, value in sample['pred_scores'].items()}
            self.results.append({'pred': pred, 'label': sample['gt_labels']['item'].item()})


@_register_metric
class GuardTestFusingAccMetric(AccMetric):
    """A fork's own AccMetric: fuses rgb and pose although the scores have more keys."""

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        pairs = [{'pred': {key: r['pred'][key] for key in ('rgb', 'pose')}, 'label': r['label']}
                 for r in results]
        metrics.update({key: value for key, value in super().compute_metrics(pairs).items()
                        if key.startswith('RGBPose')})
        return metrics


# ------------------------------------------------------------ state
@_register
class GuardTestSelfTrainingHead(EPAMHierarchicalHead):
    """Updates its prototype memories from its own predictions at inference."""

    def forward(self, x):
        scores = super().forward(x)
        if not self.training:
            with torch.no_grad():
                self._update_prototypes(self.rgb_prototypes, self._pool(x[2]),
                                        scores['rgb'].argmax(1))
        return scores


@_register
class GuardTestInPlaceRecognizer(EPAMRecognizer):
    """Flattens (N, V) by rewriting the caller's dict, as MMRecognizer3D does."""

    def extract_feat(self, inputs, stage='backbone', data_samples=None, test_mode=False):
        for key in ('imgs', 'heatmap_imgs'):
            inputs[key] = inputs[key].flatten(0, 1).unsqueeze(1)
        return super().extract_feat(inputs, stage, data_samples, test_mode)


@_register
class GuardTestNaNHead(EPAMHierarchicalHead):
    """A classification loss that is NaN."""

    def loss(self, feats, data_samples, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        losses['pose_loss_cls'] = losses['pose_loss_cls'] * float('nan')
        return losses


@_register
class GuardTestNaNWeightsHead(EPAMHierarchicalHead):
    """A classifier whose weights went NaN (a diverged checkpoint, a bad init)."""

    def init_weights(self) -> None:
        super().init_weights()
        with torch.no_grad():
            self.fc_pose.weight.fill_(float('nan'))


@_register
class GuardTestFrozenPoseBackbone(EPAMBackbone):
    """Freezes the whole pose stream (a misread ``frozen_stages``)."""

    def init_weights(self) -> None:
        super().init_weights()
        self.pose_stream.requires_grad_(False)


@_register
class GuardTestRecreatedPrototypeHead(EPAMHierarchicalHead):
    """A trainable prototype memory made anew in every forward (it never trains; DDP stops)."""

    def forward(self, x):
        scores = super().forward(x)
        self.prototypes = nn.Parameter(self.rgb_prototypes.clone())
        scores['rgb'] = scores['rgb'] + 0.1 * self._pool(x[0]) @ self.prototypes.t()
        return scores


@_register
class GuardTestLazyLayerHead(EPAMHierarchicalHead):
    """Makes a pose-to-RGB fusion layer in its first forward, sized from the features it sees."""

    def forward(self, x):
        scores = super().forward(x)
        if not hasattr(self, 'fc_fuse'):
            self.fc_fuse = nn.Linear(x[1].shape[1], self.num_classes).to(x[1].device)
        scores['rgb'] = scores['rgb'] + self.fc_fuse(self._pool(x[1]))
        return scores


@_register
class GuardTestCoarseRowsHead(EPAMHierarchicalHead):
    """Writes its fine prototype memories at the coarse labels' rows (gt, gt_coarse mixed up)."""

    def _update_prototypes(self, prototypes, features, labels):
        if prototypes.shape[0] == self.num_classes:
            labels = self._require_hierarchy()(labels)
        super()._update_prototypes(prototypes, features, labels)


@_register
class GuardTestUnusedBranchHead(EPAMHierarchicalHead):
    """A trainable classifier that no loss uses (DDP with find_unused_parameters=False stops)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fc_unused = nn.Linear(self.in_channels[0], self.num_classes)


@_register
class GuardTestNegativeTreeHead(EPAMHierarchicalHead):
    """A consistency penalty returned with its sign flipped (a log-likelihood, not a loss)."""

    def loss(self, feats, data_samples, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        losses['rgb_loss_tree'] = -losses['rgb_loss_tree']
        return losses


@_register
class GuardTestCudaLossHead(EPAMHierarchicalHead):
    """Puts its loss weights on CUDA by hand (``.cuda()`` hard-wired in the loss)."""

    def loss(self, feats, data_samples, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        weight = torch.ones(1).cuda()
        losses['rgb_loss_cls'] = losses['rgb_loss_cls'] * weight.to(losses['rgb_loss_cls'])
        return losses


def overrides(recognizer: str | None = None, backbone: str | None = None,
              head: str | None = None) -> dict[str, Any]:
    """``--cfg-options`` that swap in the given variant types."""
    chosen = {'model.type': recognizer, 'model.backbone.type': backbone,
              'model.cls_head.type': head}
    return {key: value for key, value in chosen.items() if value}


SEED_DEFECT = overrides('GuardTestLabelsToHeadRecognizer', 'GuardTestTwoFeatureBackbone',
                        'GuardTestPermissiveHead')


# ------------------------------------------------------------ sizes
@_register
class GuardTestValueReadingBackbone(EPAMBackbone):
    """Reads a value in forward (``float(tensor)``), so it cannot run on the meta device."""

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        if float(imgs.abs().sum()) < 0:  # never true: the read itself is the point
            raise AssertionError('unreachable')
        return super().forward(imgs, heatmap_imgs, gt, gt_coarse)


@_register
class GuardTestFixedCropBackbone(EPAMBackbone):
    """Pools RGB features to 7x7 whatever the crop: right at 224, wrong at any other size."""

    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        out = list(super().forward(imgs, heatmap_imgs, gt, gt_coarse))
        assert out[0] is not None
        out[0] = torch.nn.functional.adaptive_avg_pool3d(out[0], (out[0].shape[2], 7, 7))
        return tuple(out)
