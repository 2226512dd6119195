"""Synthetic batches of every input kind MMAction2 recognizers take, sized from the config.

The API every check uses, whatever the kind (:mod:`epam_guard.model.kinds` holds the
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

from ..contract.errors import SizeError
from .kinds import KINDS, InputKind, graph_joints, kind_of, signature_default

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
    #: The input kind (a key of :data:`epam_guard.model.kinds.KINDS`) and the recognizer's type.
    kind: str = 'multimodal'
    recognizer: str = ''
    #: Skeletons (the ``GCN`` kind): persons per sample, joints, coordinates per joint.
    persons: int = 0
    joints: int = 0
    coords: int = 0

    def __post_init__(self) -> None:
        # A recipe that crossed a process boundary as JSON has lists; it is a cache key.
        for name in ('sources', 'assumed'):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def input_kind(self) -> InputKind:
        """The row of :data:`~epam_guard.model.kinds.KINDS` this recipe makes."""
        return KINDS[self.kind]

    def shapes(self, views: int = 1) -> dict[str, tuple[int, ...]]:
        """One sample's input shape per packed key, for ``views`` clips: ``(V, C, T, H, W)``
        for RGB clips and heat maps, ``(V x segments, C, H, W)`` for ``NCHW``,
        ``(V, M, T, J, C)`` for skeletons."""
        kind = self.input_kind
        return {key: tuple(self._axis(letter, stream, views) for letter in axes)
                for key, axes, stream in zip(kind.keys, kind.axes, kind.streams)}

    def _axis(self, letter: str, stream: str, views: int) -> int:
        """The size of axis ``letter`` of ``stream`` (see
        :class:`~epam_guard.model.kinds.InputKind`)."""
        frames = self.rgb_frames if stream == 'rgb' else self.pose_frames
        side = self.crop if stream == 'rgb' else self.heatmap
        channels = {'rgb': self.rgb_channels, 'pose': self.heatmap_channels,
                    'keypoint': self.coords}[stream]
        return {'V': views, 'S': views * frames, 'C': channels, 'T': frames, 'H': side,
                'W': side, 'M': self.persons, 'J': self.joints}[letter]


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
    one per limb (``with_limb``, ``len(skeletons)``); ``double`` stacks the
    flipped heat maps along the frames, so it changes no channel count.
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
    if not with_kp:
        return limbs, 'GeneratePoseTarget limbs (skeletons)', None
    named = _indices([target.get(k) for k in ('left_kp', 'right_kp', 'skeletons') if k in target])
    if declared is not None and declared > limbs:
        return declared, str(key), None
    if named:
        return max(named) + 1 + limbs, 'GeneratePoseTarget key-point indices', None
    return DEFAULT_KEYPOINTS + limbs, 'assumed', (
        f'heat-map channels {DEFAULT_KEYPOINTS + limbs} ({DEFAULT_KEYPOINTS} COCO key '
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

    The kind comes first (:func:`epam_guard.model.kinds.kind_of`), then the sizes
    its streams need.

    Raises:
        SizeError: when the sizes cannot be fed to the model, in plain words.
    """
    if batch_size < 1:
        raise SizeError(f'--batch-size must be at least 1, but got {batch_size}')
    train, test = pipeline_of(cfg, 'train'), pipeline_of(cfg, 'test')
    decision = kind_of(cfg, train)
    head = cfg.model.get('cls_head') or {}
    common = dict(batch_size=batch_size, num_classes=int(head.get('num_classes', 60)),
                  seed=seed, size=size, label_api=label_api, kind=decision.kind.name,
                  recognizer=str(cfg.model.get('type') or ''))
    if decision.kind.packed:
        recipe = _multimodal_recipe(cfg, train, test, views, common)
        validate_recipe(recipe, cfg)
    else:
        recipe = _single_recipe(cfg, decision.kind, train, test, views, common)
    if decision.assumed:
        recipe = replace(recipe, assumed=(*recipe.assumed, decision.assumed))
    if size == 'tiny':
        recipe = shrink(recipe)
    elif size != 'ntu':
        raise SizeError(f'--size must be tiny or ntu, but got {size!r}')
    return recipe


def _multimodal_recipe(cfg: Any, train: list[dict], test: list[dict], views: int | None,
                       common: dict[str, Any]) -> BatchRecipe:
    """RGB clips and heat maps (``MMUniformSampleFrames``), the EPAM layout."""
    sampler = step_of(train, ('MMUniformSampleFrames',)) or {}
    clip_len = sampler.get('clip_len') or {'RGB': 16, 'Pose': 48}
    rgb_frames, pose_frames = int(clip_len.get('RGB', 16)), int(clip_len.get('Pose', 48))
    target = step_of(train, ('GeneratePoseTarget',))
    scaling = float((target or {}).get('scaling', 0.25))
    crop = _crop(train) or _crop(test) or 224
    test_sampler = step_of(test, ('MMUniformSampleFrames',)) or {}
    heat, heat_source, heat_assumed = heatmap_channels(target, cfg.model.get('backbone'))
    rgb, rgb_source, rgb_assumed = rgb_channels(cfg)
    return BatchRecipe(
        rgb_frames=rgb_frames,
        pose_frames=pose_frames,
        crop=crop,
        heatmap=int(round(crop * scaling)),
        heatmap_channels=heat,
        views=views or int(test_sampler.get('num_clips', 1)),
        rgb_channels=rgb,
        sources=(f'heat-map channels {heat} from {heat_source}',
                 f'RGB channels {rgb} from {rgb_source}'),
        assumed=tuple(note for note in (heat_assumed, rgb_assumed) if note),
        **common,
    )


#: Samplers of one clip length (``clip_len`` an int), as MMAction2 names them.
SAMPLERS = ('SampleFrames', 'UniformSampleFrames', 'DenseSampleFrames', 'UniformSample')
#: What is assumed for a one-stream kind where neither the config nor a signature says.
DEFAULT_CLIP_LEN = 8
DEFAULT_CROP = 224
DEFAULT_JOINTS = DEFAULT_KEYPOINTS


class _Sizes:
    """Sizes read for one recipe, each with where it came from or what was assumed."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.assumed: list[str] = []

    def take(self, what: str, found: tuple[Any, str] | None, default: int) -> int:
        """``found`` = (value, source) when the config (or a signature) says, else ``default``,
        which is listed as assumed."""
        if found is not None and found[0] is not None:
            self.sources.append(f'{what} {int(found[0])} from {found[1]}')
            return int(found[0])
        self.assumed.append(f'{what} {default}: the config does not say')
        return default


def _config_value(entry: Any, name: str, where: str,
                  defaults: bool = True) -> tuple[Any, str] | None:
    """``entry[name]`` where the config writes it, else (with ``defaults``) the default of the
    class registered as ``entry.type``; None when neither says."""
    if not isinstance(entry, dict):
        return None
    if entry.get(name) is not None:
        return entry[name], f'{where}.{name}'
    default = signature_default(entry.get('type'), name) if defaults else None
    if default is not None:
        return default, f'{entry.get("type")}\'s default {name}'
    return None


def _single_recipe(cfg: Any, kind: InputKind, train: list[dict], test: list[dict],
                   views: int | None, common: dict[str, Any]) -> BatchRecipe:
    """One tensor per sample: RGB segments or clips, heat maps, or skeletons."""
    backbone = cfg.model.get('backbone') or {}
    sizes = _Sizes()
    sampler = step_of(train, SAMPLERS) or {}
    name = str(sampler.get('type', 'the sampler'))
    clip_len = sizes.take('clip length', (sampler.get('clip_len'), f'{name}.clip_len')
                          if sampler else None, DEFAULT_CLIP_LEN)
    clips = int(sampler.get('num_clips', 1))
    test_sampler = step_of(test, SAMPLERS) or {}
    test_clips = int(test_sampler.get('num_clips', 1))
    frames, test_views = clip_len, test_clips
    if 'S' in kind.axes[0]:
        # Segments are the clip frames of all clips a sample carries; a test pipeline with
        # more folds them into views of that many (TSM: 8 segments a view).
        frames = clip_len * clips
        test_frames = int(test_sampler.get('clip_len', clip_len)) * test_clips
        test_views = test_frames // frames if test_frames % frames == 0 else 1
        sizes.sources.append(f'segments {frames} from {name} clip_len x num_clips')
        if test_frames % frames:
            sizes.sources.append(f'views 1: the test sampler\'s {test_frames} segments are no '
                                 f'whole number of views of {frames}')
    stream = kind.streams[0]
    crop = _crop(train) or _crop(test)
    fields: dict[str, Any] = dict(rgb_frames=0, pose_frames=0, crop=0, heatmap=0,
                                  heatmap_channels=0, rgb_channels=0)
    if stream == 'rgb':
        # What the config writes (the backbone's, else the mean it normalises by) before
        # what the backbone's class defaults to.
        fields.update(rgb_frames=frames, rgb_channels=sizes.take(
            'RGB channels', _config_value(backbone, 'in_channels', 'backbone', defaults=False)
            or _mean_channels(cfg) or _config_value(backbone, 'in_channels', 'backbone'),
            DEFAULT_RGB_CHANNELS),
            crop=sizes.take('crop', (crop, 'the pipelines\' Resize/CenterCrop') if crop else None,
                            DEFAULT_CROP))
    elif stream == 'pose':
        target = step_of(train, ('GeneratePoseTarget',))
        counted = heatmap_channels(target, {}) if target is not None else None
        channels = sizes.take('heat-map channels', (
            _config_value(backbone, 'in_channels', 'backbone')
            or (counted[:2] if counted and counted[1] != 'assumed' else None)), DEFAULT_KEYPOINTS)
        side = sizes.take('crop', (crop, 'the pipelines\' Resize/CenterCrop') if crop else None,
                          DEFAULT_CROP)
        scaling = _config_value({**(target or {}), 'type': 'GeneratePoseTarget'}, 'scaling',
                                'GeneratePoseTarget') if target else None
        factor = float(scaling[0]) if scaling else 1.0
        fields.update(pose_frames=frames, heatmap_channels=channels, crop=side,
                      heatmap=int(round(side * factor)))
    else:
        gcn = step_of(train, ('FormatGCNInput',)) or {}
        fields.update(
            pose_frames=frames,
            persons=sizes.take('persons', _config_value({**gcn, 'type': 'FormatGCNInput'},
                                                        'num_person', 'FormatGCNInput'), 2),
            joints=sizes.take('joints', (graph_joints(backbone.get('graph_cfg')),
                                         'backbone.graph_cfg.layout'), DEFAULT_JOINTS),
            coords=sizes.take('coordinates', _config_value(backbone, 'in_channels', 'backbone'),
                              3))
    return BatchRecipe(views=views or test_views, keep_time=not kind.shrink_time,
                       sources=tuple(sizes.sources), assumed=tuple(sizes.assumed),
                       **fields, **common)


def _mean_channels(cfg: Any) -> tuple[int, str] | None:
    """Channels the data preprocessor normalises (the length of its ``mean``), if it says."""
    preprocessor = cfg.model.get('data_preprocessor') or {}
    mean = preprocessor.get('mean') if isinstance(preprocessor, dict) else None
    if isinstance(mean, (list, tuple)) and mean:
        return len(mean), 'data_preprocessor mean'
    return None


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

    With ``keep_time`` (default: the recipe's own ``keep_time``, always set for
    a kind whose frames are part of the model, ``NCHW``'s segments) the clip
    lengths stay as they are and only space shrinks. Persons, joints and
    coordinates never shrink. Shrinking a tiny recipe again changes nothing.
    """
    keep_time = recipe.keep_time if keep_time is None else keep_time
    crop = min(recipe.crop, TINY_CROP)
    heatmap = crop * recipe.heatmap // recipe.crop if recipe.crop else 0
    if recipe.input_kind.packed:
        ratio = recipe.pose_frames // recipe.rgb_frames
        rgb_frames = recipe.rgb_frames if keep_time else min(recipe.rgb_frames, TINY_RGB_FRAMES)
        return replace(recipe, rgb_frames=rgb_frames, pose_frames=rgb_frames * ratio,
                       crop=crop, heatmap=heatmap, keep_time=keep_time)

    def frames(count: int) -> int:
        return count if keep_time else min(count, TINY_RGB_FRAMES)

    return replace(recipe, rgb_frames=frames(recipe.rgb_frames),
                   pose_frames=frames(recipe.pose_frames), crop=crop, heatmap=heatmap,
                   keep_time=keep_time)


def sampler_clip_len(recipe: BatchRecipe) -> int | dict[str, int] | None:
    """The ``clip_len`` a pipeline's sampler needs to make the recipe's frames (for the
    launch tier's shrunk pipelines): ``dict(RGB=..., Pose=...)`` for the multimodal kind, the
    one stream's frames for clips, heat maps and skeletons, None where the frames are the
    config's own (``NCHW`` segments: ``clip_len x num_clips`` stays as it is)."""
    kind = recipe.input_kind
    if kind.packed:
        return {'RGB': recipe.rgb_frames, 'Pose': recipe.pose_frames}
    if not kind.shrink_time:
        return None
    return recipe.rgb_frames if kind.streams[0] == 'rgb' else recipe.pose_frames


def value_recipe(recipe: BatchRecipe) -> BatchRecipe:
    """The size the value passes run at (losses, gradients, targets, predictions, routing,
    the memory estimate): the recipe itself at ``tiny``; at ``ntu`` its clip lengths with
    space shrunk to the tiny crop. Only ``structure``'s shape passes run at the full size."""
    return recipe if recipe.size != 'ntu' else shrink(recipe, keep_time=True)


def describe(recipe: BatchRecipe, views: int = 1) -> str:
    """One sample's inputs in words: ``RGB 3x8x64x64  pose 17x32x16x16`` for the multimodal
    kind (as the EPAM header always said), else the recognizer, the kind and the shape
    (``Recognizer2D NCHW 8x3x64x64``)."""
    shapes = recipe.shapes(views)
    if recipe.input_kind.packed:
        return '  '.join(f'{_STREAM_WORDS[stream]} {"x".join(map(str, shapes[key][1:]))}'
                         for key, stream in zip(recipe.input_kind.keys,
                                                recipe.input_kind.streams))
    (shape,) = shapes.values()
    dims = shape if recipe.kind == 'NCHW' else shape[1:]
    return ' '.join(part for part in (recipe.recognizer, recipe.kind,
                                      'x'.join(map(str, dims))) if part)


_STREAM_WORDS = {'rgb': 'RGB', 'pose': 'pose', 'keypoint': 'skeletons'}


def pass_sizes(recipe: BatchRecipe) -> dict[str, str]:
    """What each kind of pass runs at, in words (:func:`describe`), by kind of pass."""
    values = value_recipe(recipe)
    if values == recipe:
        return {'every pass': describe(recipe)}
    return {'shape passes (structure, on the meta device)': describe(recipe),
            'value passes and the memory estimate': describe(values)}


def synthetic_labels(count: int, num_classes: int) -> list[int]:
    """Distinct, deterministic labels that start at 0 and stride across the classes.

    A stride coprime with ``num_classes`` visits distinct classes and spreads
    them over the coarse groups; starting at 0 means a sub-batch without the
    first sample has a minimum above 0, which exposes batch-dependent re-basing.
    """
    stride = next(s for s in (23, 29, 31, 37, 41, 1) if math.gcd(s, num_classes) == 1)
    return [(i * stride) % num_classes for i in range(count)]


def rolled(labels: list[int]) -> list[int]:
    """The labels moved one sample on: each sample gets its neighbour's label (distinct
    labels all change, and every value stays in range)."""
    return labels[1:] + labels[:1]


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


#: The range synthetic values of each stream lie in, before the data preprocessor: pixels,
#: heat-map intensities, key-point coordinates as ``PreNormalize2D`` leaves them.
VALUE_RANGES = {'rgb': (0.0, 255.0), 'pose': (0.0, 1.0), 'keypoint': (-1.0, 1.0)}


def make_batch(recipe: BatchRecipe, *, views: int = 1, labels: list[int] | None = None,
               label_api: str | None = None, meta: bool = False) -> dict[str, Any]:
    """A collated batch as a dataloader would hand it to ``data_preprocessor``.

    ``inputs`` is a list of per-sample tensors (shapes: ``recipe.shapes(views)``)
    for a one-key kind, a dict of such lists by key for the multimodal kind.
    Values lie in each stream's :data:`VALUE_RANGES` (pixels in [0, 255], heat
    maps in [0, 1], coordinates in [-1, 1]). The same recipe and labels always
    give the same tensors. With ``meta`` the tensors are shapes only
    (PyTorch's ``meta`` device), for passes that need no values.
    """
    labels = synthetic_labels(recipe.batch_size, recipe.num_classes) if labels is None else labels
    generator = torch.Generator().manual_seed(recipe.seed)
    kind = recipe.input_kind
    shapes = recipe.shapes(views)
    tensors: dict[str, list[torch.Tensor]] = {key: [] for key in kind.keys}
    for _ in labels:
        for key, stream in zip(kind.keys, kind.streams):
            if meta:
                tensors[key].append(torch.empty(shapes[key], device='meta'))
                continue
            low, high = VALUE_RANGES[stream]
            tensors[key].append(torch.rand(shapes[key], generator=generator) * (high - low) + low)
    api = label_api or recipe.label_api
    return {
        'inputs': tensors if kind.packed else tensors[kind.keys[0]],
        'data_samples': [make_data_sample(label, api) for label in labels],
    }


def input_lists(batch: dict[str, Any]) -> dict[str, list[Any]]:
    """The batch's per-sample tensors by key: the multimodal dict as it is, one-tensor inputs
    under ``'inputs'``."""
    inputs = batch['inputs']
    return dict(inputs) if isinstance(inputs, dict) else {'inputs': list(inputs)}


def _map_inputs(inputs: Any, pick: Any) -> Any:
    """``pick`` applied to each list of per-sample tensors, keeping the container's form."""
    if isinstance(inputs, dict):
        return {key: pick(values) for key, values in inputs.items()}
    return pick(inputs)


def select(batch: dict[str, Any], order: list[int]) -> dict[str, Any]:
    """The samples of ``batch`` at ``order`` (a permutation or a sub-batch), any kind."""
    return {
        'inputs': _map_inputs(batch['inputs'], lambda values: [values[i] for i in order]),
        'data_samples': [batch['data_samples'][i] for i in order],
    }


def preprocess(model: Any, batch: dict[str, Any], training: bool) -> dict[str, Any]:
    """Run the model's data preprocessor on a fresh copy of the batch's containers.

    MMAction2's preprocessors rewrite the containers they are given, so each
    call gets new ones and the synthetic batch stays reusable.
    """
    fresh = {
        'inputs': _map_inputs(batch['inputs'], list),
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


def config_clip_lengths(ctx: Any) -> BatchRecipe:
    """The tiny recipe at the config's own clip lengths (space shrunk only)."""
    settings = ctx.settings
    real = recipe_from_config(ctx.cfg, 'ntu', settings.batch_size, settings.views,
                              settings.seed, ctx.recipe.label_api)
    return shrink(replace(real, size='tiny'), keep_time=True)
