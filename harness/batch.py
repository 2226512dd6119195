"""Synthetic batches of every input kind MMAction2 recognizers take, sized from the config.

The API every check uses, whatever the kind (:mod:`epam_guard.kinds` holds the
table of kinds):

- :func:`recipe_from_config` derives a :class:`BatchRecipe` from the config
  alone: the kind (``recipe.kind``: ``NCHW`` for ``Recognizer2D``, ``NCTHW``
  for RGB ``Recognizer3D``, ``NCTHW_Heatmap`` for PoseC3D, ``GCN`` for
  ``RecognizerGCN``, ``multimodal`` for ``MMRecognizer3D`` and EPAM), its
  sizes, the class count (``cls_head.num_classes``) and the test views;
- ``recipe.shapes(views)`` gives one sample's shape per packed key
  (``{'imgs': (S, C, H, W)}``, ``{'imgs': (V, C, T, H, W)}``,
  ``{'keypoint': (V, M, T, J, C)}``, ``{'imgs': ..., 'heatmap_imgs': ...}``);
- :func:`make_batch` ``(recipe, views=..., labels=...)`` returns what a
  dataloader hands the model: ``{'inputs': ..., 'data_samples': [...]}``, the
  inputs a list of per-sample tensors for a one-key kind, a dict of such
  lists for the multimodal kind (``PackActionInputs.collect_keys``);
- :func:`select` takes samples by index, :func:`labels_of` reads their labels,
  :func:`preprocess` runs the model's own data preprocessor on a fresh copy,
  :func:`input_lists` names the per-sample tensors of any kind;
- :func:`pass_sizes` says in words what the passes run at, naming the kind
  (``Recognizer2D NCHW 8x3x64x64``).

Where each size comes from, per kind:

- ``NCHW``: the segments are the train sampler's ``clip_len x num_clips`` and
  part of the model (TSM's ``num_segments``, a TSN consensus): ``tiny`` keeps
  them and shrinks space only;
- ``NCTHW``: frames from the sampler's ``clip_len``, the crop from the last
  fixed-size ``Resize``/``CenterCrop``;
- ``NCTHW_Heatmap``: key points from the backbone's ``in_channels``, else what
  ``GeneratePoseTarget`` makes; heat-map size from the crop and its
  ``scaling``;
- ``GCN``: frames from the sampler, persons from ``FormatGCNInput.num_person``,
  joints from the backbone's ``graph_cfg.layout`` (MMAction2's ``Graph``),
  coordinates from the backbone's ``in_channels``;
- ``multimodal`` (EPAM's layout): clip lengths from
  ``MMUniformSampleFrames.clip_len``, the heat-map scaling from
  ``GeneratePoseTarget``; heat-map channels from ``GeneratePoseTarget`` where it
  fixes them (its limbs, its key-point indices), else the input channels the
  backbone declares for its pose stream (under whatever name: ``pose_stream``,
  ``pose_pathway``, ...); RGB channels from the RGB stream's declared input
  channels, else the preprocessor's ``mean``.

What the config does not say is taken from the backbone class's own defaults
(its ``__init__`` signature) where it has one, else assumed (NTU-60: 17 COCO
key points, 3 colours) and listed in the recipe's ``assumed``, which the
report's header prints. ``tiny`` keeps the channel counts, the pose:RGB frame
ratio and the RGB:heat-map spatial ratio, and shrinks the rest; ``ntu`` keeps
it all. The test views are the test sampler's ``num_clips``.

A batch is what a dataloader hands the model, so the model's own data
preprocessor runs on it exactly as in training.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

import torch

from .errors import SizeError

# What the EPAM backbone does to space: RGB /32, pose heat maps /8.
RGB_STRIDE = 32
POSE_STRIDE = 8
TINY_RGB_FRAMES = 4
TINY_CROP = 64
#: What is assumed where the config does not say: COCO's 17 key points, 3 colours.
DEFAULT_KEYPOINTS = 17
DEFAULT_RGB_CHANNELS = 3
#: Backbone entries that name a stream by its modality (``pose_stream``, ``pose_pathway``,
#: ``heatmap_backbone``; ``rgb_stream``, ``video_pathway``), and flat keys that declare an
#: input's channels (``heatmap_channels``, ``pose_in_channels``; not ``pose_channels``,
#: which forks use for feature widths).
STREAM_WORDS = {'pose': r'pose|heatmap|skeleton|keypoint|kp', 'rgb': r'rgb|video|img|image'}


@dataclass(frozen=True)
class BatchRecipe:
    """Sizes of one synthetic batch. ``source`` says where each came from."""

    rgb_frames: int
    pose_frames: int
    crop: int
    heatmap: int
    heatmap_channels: int
    views: int
    batch_size: int
    num_classes: int
    seed: int = 0
    size: str = 'tiny'
    label_api: str = 'gt_label'
    #: True when ``tiny`` keeps the config's clip lengths (shrinking space only),
    #: for a model that cannot take other clip lengths.
    keep_time: bool = False
    rgb_channels: int = DEFAULT_RGB_CHANNELS
    #: Where each channel count came from (``heat-map channels 28 from ...``).
    sources: tuple[str, ...] = ()
    #: What the config does not say and the guard assumed (the header prints it).
    assumed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A recipe that crossed a process boundary as JSON has lists; it is a cache key.
        for name in ('sources', 'assumed'):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def shapes(self, views: int = 1) -> dict[str, tuple[int, ...]]:
        """Per-sample input shapes ``(V, C, T, H, W)`` for ``views`` clips."""
        return {
            'imgs': (views, self.rgb_channels, self.rgb_frames, self.crop, self.crop),
            'heatmap_imgs': (views, self.heatmap_channels, self.pose_frames,
                             self.heatmap, self.heatmap),
        }


def pipeline_of(cfg: Any, split: str) -> list[dict]:
    """The transforms of ``{split}_dataloader.dataset.pipeline``, else of the variable
    ``{split}_pipeline``; empty when the config has neither."""
    loader = cfg.get(f'{split}_dataloader') or {}
    dataset = loader.get('dataset') or {}
    return list(dataset.get('pipeline') or cfg.get(f'{split}_pipeline') or [])


def step_of(pipeline: list[dict], kinds: tuple[str, ...]) -> dict | None:
    """The first transform of ``pipeline`` whose type is one of ``kinds``."""
    return next((step for step in pipeline if step.get('type') in kinds), None)


def _crop(pipeline: list[dict]) -> int | None:
    size = None
    for step in pipeline:
        if step.get('type') == 'CenterCrop':
            crop = step.get('crop_size', 224)
            size = crop if isinstance(crop, int) else crop[0]
        elif step.get('type') == 'Resize' and not step.get('keep_ratio', True):
            scale = step.get('scale')
            size = scale[0] if isinstance(scale, (tuple, list)) else scale
    return size


def declared_channels(backbone: Any, modality: str) -> tuple[int | None, str | None]:
    """Input channels the backbone config declares for ``modality`` (``pose`` or ``rgb``), and
    the key that says so: ``in_channels`` of an entry named for the modality
    (``pose_stream``, ``pose_pathway``, ...), or a flat ``heatmap_channels`` /
    ``pose_in_channels``; ``(None, None)`` when it declares none."""
    if not isinstance(backbone, dict):
        return None, None
    words = STREAM_WORDS[modality]
    for key, value in backbone.items():
        if isinstance(value, dict) and re.search(words, str(key)) \
                and isinstance(value.get('in_channels'), int):
            return int(value['in_channels']), f'backbone.{key}.in_channels'
    for key, value in backbone.items():
        if isinstance(value, int) and not isinstance(value, bool) and re.fullmatch(
                rf'({words})_?(in_channels|input_channels)' + (
                    '|heatmap_channels' if modality == 'pose' else ''), str(key)):
            return int(value), f'backbone.{key}'
    return None, None


def _indices(value: Any) -> list[int]:
    flat: list[int] = []
    for item in value or ():
        flat.extend(_indices(item) if isinstance(item, (list, tuple)) else [int(item)])
    return flat


def heatmap_channels(target: dict | None, backbone: Any) -> tuple[int, str, str | None]:
    """Heat-map channels, where the count came from, and what was assumed (or None).

    ``GeneratePoseTarget`` makes one channel per key point (``with_kp``) and
    one per limb (``with_limb``, ``len(skeletons)``), twice with ``double``.
    Its limbs are exact; its key points are not (the data decides): the
    backbone's declared pose channels (less the limbs) win, then the highest
    key-point index the transform names (``left_kp``, ``right_kp``,
    ``skeletons``), then COCO's 17.
    """
    from mmaction.datasets.transforms import GeneratePoseTarget

    declared, key = declared_channels(backbone, 'pose')
    if target is None:
        if declared is not None:
            return declared, str(key), None
        return DEFAULT_KEYPOINTS, 'assumed', (
            f'heat-map channels {DEFAULT_KEYPOINTS} (COCO key points): the config has no '
            'GeneratePoseTarget and the backbone declares no pose input channels')
    defaults = GeneratePoseTarget()
    with_kp, with_limb = target.get('with_kp', True), target.get('with_limb', False)
    limbs = len(target.get('skeletons') or defaults.skeletons) if with_limb else 0
    factor = 2 if target.get('double', False) else 1
    if not with_kp:
        return limbs * factor, 'GeneratePoseTarget limbs (skeletons)', None
    named = _indices([target.get(k) for k in ('left_kp', 'right_kp', 'skeletons') if k in target])
    if declared is not None and declared % factor == 0 and declared // factor > limbs:
        return declared, str(key), None
    if named:
        return (max(named) + 1 + limbs) * factor, 'GeneratePoseTarget key-point indices', None
    return (DEFAULT_KEYPOINTS + limbs) * factor, 'assumed', (
        f'heat-map channels {(DEFAULT_KEYPOINTS + limbs) * factor} ({DEFAULT_KEYPOINTS} COCO key '
        'points): GeneratePoseTarget does not fix the key points and the backbone declares no '
        'pose input channels')


def rgb_channels(cfg: Any) -> tuple[int, str, str | None]:
    """RGB channels, where the count came from, and what was assumed (or None)."""
    declared, key = declared_channels(cfg.model.get('backbone'), 'rgb')
    if declared is not None:
        return declared, str(key), None
    preprocessor = (cfg.model.get('data_preprocessor') or {})
    imgs = (preprocessor.get('preprocessors') or {}).get('imgs') or preprocessor
    mean = imgs.get('mean') if isinstance(imgs, dict) else None
    if isinstance(mean, (list, tuple)) and mean:
        return len(mean), 'data_preprocessor mean', None
    return DEFAULT_RGB_CHANNELS, 'assumed', (
        f'RGB channels {DEFAULT_RGB_CHANNELS}: neither the backbone nor the data preprocessor '
        'says')


def recipe_from_config(cfg: Any, size: str = 'tiny', batch_size: int = 4,
                       views: int | None = None, seed: int = 0,
                       label_api: str = 'gt_label') -> BatchRecipe:
    """Derive the batch recipe from the config, validating it before any forward pass.

    Raises:
        SizeError: when the sizes cannot be fed to the model, in plain words.
    """
    if batch_size < 1:
        raise SizeError(f'--batch-size must be at least 1, but got {batch_size}')
    train, test = pipeline_of(cfg, 'train'), pipeline_of(cfg, 'test')
    sampler = step_of(train, ('MMUniformSampleFrames',)) or {}
    clip_len = sampler.get('clip_len') or {'RGB': 16, 'Pose': 48}
    rgb_frames, pose_frames = int(clip_len.get('RGB', 16)), int(clip_len.get('Pose', 48))
    target = step_of(train, ('GeneratePoseTarget',))
    scaling = float((target or {}).get('scaling', 0.25))
    crop = _crop(train) or _crop(test) or 224
    test_sampler = step_of(test, ('MMUniformSampleFrames',)) or {}
    head = cfg.model.get('cls_head') or {}
    heat, heat_source, heat_assumed = heatmap_channels(target, cfg.model.get('backbone'))
    rgb, rgb_source, rgb_assumed = rgb_channels(cfg)
    recipe = BatchRecipe(
        rgb_frames=rgb_frames,
        pose_frames=pose_frames,
        crop=crop,
        heatmap=int(round(crop * scaling)),
        heatmap_channels=heat,
        views=views or int(test_sampler.get('num_clips', 1)),
        batch_size=batch_size,
        num_classes=int(head.get('num_classes', 60)),
        seed=seed,
        size=size,
        label_api=label_api,
        rgb_channels=rgb,
        sources=(f'heat-map channels {heat} from {heat_source}',
                 f'RGB channels {rgb} from {rgb_source}'),
        assumed=tuple(note for note in (heat_assumed, rgb_assumed) if note),
    )
    validate_recipe(recipe, cfg)
    if size == 'tiny':
        recipe = shrink(recipe)
    elif size != 'ntu':
        raise SizeError(f'--size must be tiny or ntu, but got {size!r}')
    return recipe


def validate_recipe(recipe: BatchRecipe, cfg: Any) -> None:
    """Reject sizes the EPAM backbone cannot take, naming the config entry."""
    if recipe.pose_frames % recipe.rgb_frames:
        raise SizeError(
            f'pose clip length {recipe.pose_frames} is not a multiple of the RGB clip '
            f'length {recipe.rgb_frames} (MMUniformSampleFrames.clip_len): the pose '
            'attention resamples pose features to the RGB length with stride T_pose/T_rgb')
    rgb_out, pose_out = recipe.crop / RGB_STRIDE, recipe.heatmap / POSE_STRIDE
    if rgb_out != pose_out or not float(rgb_out).is_integer():
        raise SizeError(
            f'crop {recipe.crop} and heat map {recipe.heatmap} do not meet: the RGB stream '
            f'gives {recipe.crop}/{RGB_STRIDE} = {rgb_out:g} and the pose stream '
            f'{recipe.heatmap}/{POSE_STRIDE} = {pose_out:g}; they must be the same integer '
            '(GeneratePoseTarget.scaling must be 0.25 with a crop divisible by 32)')
    expected, key = declared_channels(cfg.model.get('backbone'), 'pose')
    if expected is not None and expected != recipe.heatmap_channels:
        raise SizeError(
            f'the pipeline makes {recipe.heatmap_channels} heat-map channels '
            f'(GeneratePoseTarget) but {key} is {expected}')


def shrink(recipe: BatchRecipe, keep_time: bool | None = None) -> BatchRecipe:
    """The ``tiny`` variant: same channels and ratios, few frames, small crops.

    With ``keep_time`` (default: the recipe's own ``keep_time``) the clip
    lengths stay as they are and only space shrinks. Shrinking a tiny recipe
    again changes nothing.
    """
    keep_time = recipe.keep_time if keep_time is None else keep_time
    ratio = recipe.pose_frames // recipe.rgb_frames
    rgb_frames = recipe.rgb_frames if keep_time else min(recipe.rgb_frames, TINY_RGB_FRAMES)
    crop = min(recipe.crop, TINY_CROP)
    return replace(recipe, rgb_frames=rgb_frames, pose_frames=rgb_frames * ratio,
                   crop=crop, heatmap=crop * recipe.heatmap // recipe.crop, keep_time=keep_time)


def value_recipe(recipe: BatchRecipe) -> BatchRecipe:
    """The size the value passes run at (losses, gradients, targets, predictions, routing,
    the memory estimate): the recipe itself at ``tiny``; at ``ntu`` its clip lengths with
    space shrunk to the tiny crop. Only ``structure``'s shape passes run at the full size."""
    return recipe if recipe.size != 'ntu' else shrink(recipe, keep_time=True)


def pass_sizes(recipe: BatchRecipe) -> dict[str, str]:
    """What each kind of pass runs at, in words (``RGB CxTxHxW  pose CxTxHxW``), by kind."""
    def sizes(r: BatchRecipe) -> str:
        return (f'RGB {r.rgb_channels}x{r.rgb_frames}x{r.crop}x{r.crop}  pose '
                f'{r.heatmap_channels}x{r.pose_frames}x{r.heatmap}x{r.heatmap}')

    values = value_recipe(recipe)
    if values == recipe:
        return {'every pass': sizes(recipe)}
    return {'shape passes (structure, on the meta device)': sizes(recipe),
            'value passes and the memory estimate': sizes(values)}


def synthetic_labels(count: int, num_classes: int) -> list[int]:
    """Distinct, deterministic labels that start at 0 and stride across the classes.

    A stride coprime with ``num_classes`` visits distinct classes and spreads
    them over the coarse groups; starting at 0 means a sub-batch without the
    first sample has a minimum above 0, which exposes batch-dependent re-basing.
    """
    stride = next(s for s in (23, 29, 31, 37, 41, 1) if math.gcd(s, num_classes) == 1)
    return [(i * stride) % num_classes for i in range(count)]


def make_data_sample(label: int, label_api: str = 'gt_label') -> Any:
    """An ``ActionDataSample`` carrying ``label`` the way MMAction2 1.2 or 1.0/1.1 does."""
    from mmaction.structures import ActionDataSample
    from mmengine.structures import LabelData

    sample = ActionDataSample()
    if label_api == 'gt_labels':
        sample.gt_labels = LabelData(item=torch.tensor([label], dtype=torch.long))
    else:
        sample.set_gt_label(label)
    return sample


def make_batch(recipe: BatchRecipe, *, views: int = 1, labels: list[int] | None = None,
               label_api: str | None = None, meta: bool = False) -> dict[str, Any]:
    """A collated batch as a dataloader would hand it to ``data_preprocessor``.

    Pixel values lie in [0, 255] (before normalisation), heat maps in [0, 1].
    The same recipe and labels always give the same tensors. With ``meta``
    the tensors are shapes only (PyTorch's ``meta`` device), for passes that
    need no values.
    """
    labels = synthetic_labels(recipe.batch_size, recipe.num_classes) if labels is None else labels
    generator = torch.Generator().manual_seed(recipe.seed)
    shapes = recipe.shapes(views)
    imgs, heatmaps = [], []
    for _ in labels:
        if meta:
            imgs.append(torch.empty(shapes['imgs'], device='meta'))
            heatmaps.append(torch.empty(shapes['heatmap_imgs'], device='meta'))
            continue
        imgs.append(torch.rand(shapes['imgs'], generator=generator) * 255)
        heatmaps.append(torch.rand(shapes['heatmap_imgs'], generator=generator))
    api = label_api or recipe.label_api
    return {
        'inputs': {'imgs': imgs, 'heatmap_imgs': heatmaps},
        'data_samples': [make_data_sample(label, api) for label in labels],
    }


def select(batch: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """The samples of ``batch`` at ``order`` (a permutation or a sub-batch)."""
    return {
        'inputs': {key: [values[i] for i in order] for key, values in batch['inputs'].items()},
        'data_samples': [batch['data_samples'][i] for i in order],
    }


def preprocess(model: Any, batch: dict[str, Any], training: bool) -> dict[str, Any]:
    """Run the model's data preprocessor on a fresh copy of the batch's containers.

    MMAction2's preprocessors rewrite the containers they are given, so each
    call gets new ones and the synthetic batch stays reusable.
    """
    fresh = {
        'inputs': {key: list(values) for key, values in batch['inputs'].items()},
        'data_samples': [sample.clone() for sample in batch['data_samples']],
    }
    return model.data_preprocessor(fresh, training)


def labels_of(batch: dict[str, Any]) -> list[int]:
    """Fine labels of a batch's data samples, from either label API."""
    return [read_label(sample) for sample in batch['data_samples']]


def read_label(sample: Any) -> int:
    """``gt_label`` (MMAction2 1.2) or ``gt_labels.item`` (1.0/1.1 forks) as an int."""
    if 'gt_label' in sample:
        return int(sample.gt_label.reshape(-1)[0])
    return int(sample.gt_labels.item.reshape(-1)[0])
