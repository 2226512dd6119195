"""What each of the config's pipelines hands the model, from its transforms' parameters alone.

No video is read and no transform runs: the shape pass follows MMAction2's
own rules for the transforms it knows (sampling, decoding, compacting,
resizing and cropping, flipping, ``GeneratePoseTarget``, ``FormatShape`` for
``NCTHW``/``NCTHW_Heatmap``/``NCHW``, ``GenSkeFeat`` and ``FormatGCNInput``
for skeletons, ``PackActionInputs``) and says where it stops:

- at a transform it does not know (a fork's own), whose effect on shapes it
  cannot tell: the ``pipeline`` check runs the real transforms;
- where a size depends on the video or the skeletons themselves (no
  fixed-size resize or crop after ``MMCompact``, a random crop as the last
  spatial step).

Each transform's parameters are read as the config writes them, with the
defaults of MMAction2's signature where it writes none (:data:`DEFAULTS`;
a unit test compares them with the installed classes, so this module
imports no dataset code and stays cheap enough for the fast tier).
Shapes are MMAction2's: frames first before ``FormatShape``, then per sample
``(V, C, T, H, W)`` (clips, heat maps), ``(segments, C, H, W)`` (``NCHW``) or
``(V, M, T, J, C)`` (skeletons). :func:`kind_findings` judges a one-tensor
kind's sample against what its model fixes; the multimodal layout is judged
by the ``pipeline`` check's own rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .batch import heatmap_channels, pipeline_of, step_of
from .kinds import signature_default

#: Key points of the NTU-60 2-D annotations (COCO-17), which ``GeneratePoseTarget``
#: turns into one heat map each: the data decides this, not the config.
NUM_KEYPOINTS = 17
#: MMAction2's default ``GeneratePoseTarget.skeletons`` (COCO-17) has this many limbs.
DEFAULT_LIMBS = 17
SPLITS = ('train', 'val', 'test')

#: The signature defaults of the parameters the shape pass reads, per transform.
DEFAULTS: dict[str, dict[str, Any]] = {
    'MMUniformSampleFrames': {'num_clips': 1},
    'UniformSampleFrames': {'num_clips': 1},
    'SampleFrames': {'num_clips': 1},
    'Resize': {'keep_ratio': True},
    'GeneratePoseTarget': {'with_kp': True, 'with_limb': False, 'double': False,
                           'scaling': 1.0},
    'FormatShape': {'collapse': False},
    'PackActionInputs': {'collect_keys': None},
    'GenSkeFeat': {'dataset': 'nturgb+d', 'feats': ['j']},
    'FormatGCNInput': {'num_person': 2},
}
SAMPLERS = ('MMUniformSampleFrames', 'UniformSampleFrames', 'SampleFrames')
#: Transforms that read videos (``imgs``) or skeletons (``keypoint``) but change no size.
VIDEO_DECODERS = ('DecordDecode', 'OpenCVDecode', 'PyAVDecode', 'PIMSDecode', 'RawFrameDecode')
UNCHANGED = ('DecordInit', 'OpenCVInit', 'PyAVInit', 'PIMSInit', 'DecompressPose', 'Flip',
             'ColorJitter', 'RandomErasing', 'PreNormalize2D', 'PreNormalize3D')
#: Coordinates ``GenSkeFeat`` gives each joint per feature (joints, bones, motions): x, y and
#: the score of 2-D skeletons, x, y, z of 3-D ones.
COORDS_PER_FEATURE = 3
#: Transforms whose output size depends on the skeletons or on chance.
UNSIZED = {'MMCompact': 'the skeletons (MMCompact)', 'PoseCompact': 'the skeletons (PoseCompact)',
           'RandomResizedCrop': 'chance (RandomResizedCrop)',
           'MultiScaleCrop': 'chance (MultiScaleCrop)'}
#: Compacting boxes whose ``hw_ratio`` fixes the frames' aspect (their size stays the data's).
COMPACTS = ('MMCompact', 'PoseCompact')
#: The width a known aspect is sized at for MMCV's ``rescale_size`` (which scales by ratio).
ASPECT_BASE = 1000.0
#: Crops each clip is multiplied into.
MULTI_CROPS = {'ThreeCrop': 3, 'TenCrop': 10}


class Stop(Exception):
    """The shape pass cannot follow the pipeline past this point; the message says why."""


@dataclass
class Derived:
    """What the shape pass found for one pipeline.

    Attributes:
        split: ``train``, ``val`` or ``test``.
        pipeline: the transforms, as the config writes them.
        inputs: per-sample packed shapes by key (``(V, C, T, H, W)``), or one
            shape when ``PackActionInputs`` packs a single array; None when the
            pass stopped.
        stopped: why the pass stopped (an unknown transform, a size the data
            decides), or None.
        problems: what the pipeline itself gets wrong on the way (a key no
            transform makes), in words.
    """

    split: str
    pipeline: list[dict]
    inputs: dict[str, tuple[int, ...]] | tuple[int, ...] | None = None
    stopped: str | None = None
    problems: list[str] = field(default_factory=list)


@dataclass
class _State:
    """The shape-relevant part of MMAction2's ``results`` dict as it flows."""

    clip_len: Any = None
    num_clips: int = 1
    #: (H, W) of the frames (``img_shape``); None while the data decides it.
    size: tuple[int, int] | None = None
    #: Why ``size`` is unknown.
    sized_by: str = 'the video'
    #: Height over width while ``size`` is unknown, where a compacting box fixes it
    #: (``PoseCompact(hw_ratio=...)``), so a ratio-keeping resize can size the frames.
    aspect: float | None = None
    sampled: bool = False
    keypoints: bool = False
    #: Key points per person in the skeletons (the data decides; see :func:`keypoints_of`).
    keypoint_count: int = NUM_KEYPOINTS
    #: Joints and coordinates per joint of the skeletons, once ``GenSkeFeat`` names them.
    joints: int | None = None
    coords: int | None = None
    #: Arrays by key, frames first as MMAction2 keeps them until FormatShape.
    arrays: dict[str, tuple[int, ...]] = field(default_factory=dict)
    formatted: bool = False

    def frames(self, modality: str) -> int:
        if isinstance(self.clip_len, dict):
            if modality not in self.clip_len:
                raise Stop(f'the sampler gives no {modality} clip length (clip_len='
                           f'{self.clip_len})')
            return int(self.clip_len[modality]) * self.num_clips
        return int(self.clip_len) * self.num_clips

    def need_size(self, kind: str) -> tuple[int, int]:
        if self.size is None:
            raise Stop(f'{kind} needs the frame size, which depends on {self.sized_by} here '
                       '(no fixed-size Resize or crop after it)')
        return self.size


def parameters(step: dict) -> dict[str, Any]:
    """A transform's parameters: the config's, over MMAction2's defaults."""
    return {**DEFAULTS.get(str(step.get('type')), {}), **step}


def _pair(value: Any) -> tuple[int, int]:
    """An int or ``(w, h)`` -> ``(h, w)``."""
    if isinstance(value, (list, tuple)):
        return int(value[1]), int(value[0])
    return int(value), int(value)


def _resize(state: _State, step: dict[str, Any]) -> None:
    scale = step['scale']
    if not step['keep_ratio']:
        state.size = _pair(scale)
        return
    if state.size is not None:
        height, width = state.size
    elif state.aspect is not None:
        height, width = int(state.aspect * ASPECT_BASE), int(ASPECT_BASE)
    else:
        return  # still the data's or chance's: a later fixed-size step may settle it
    from mmcv.image import rescale_size

    if isinstance(scale, (list, tuple)):
        scale = tuple(scale)
        if min(scale) == -1:  # MMAction2's "short side to max(scale)"
            scale = (float('inf'), max(scale))
    new_width, new_height = rescale_size((width, height), scale)
    state.size = (int(new_height), int(new_width))


def _crop(state: _State, crop: tuple[int, int]) -> None:
    """A fixed crop: the frames' size after it (smaller frames stay as they are)."""
    if state.size is not None:
        crop = (min(crop[0], state.size[0]), min(crop[1], state.size[1]))
    state.size = crop


def _heatmaps(state: _State, step: dict[str, Any]) -> None:
    if not state.keypoints:
        raise Stop('GeneratePoseTarget comes before any transform decodes the skeletons')
    height, width = state.need_size('GeneratePoseTarget')
    scaling = float(step['scaling'])
    channels = (state.keypoint_count if step['with_kp'] else 0) + _limbs(step)
    frames = state.frames('Pose') * (2 if step['double'] else 1)
    key = 'heatmap_imgs' if 'imgs' in state.arrays else 'imgs'
    state.arrays[key] = (frames, channels, int(height * scaling + 0.5),
                         int(width * scaling + 0.5))


def _limbs(step: dict[str, Any]) -> int:
    """Limb channels of a ``GeneratePoseTarget`` (its parameters over the defaults)."""
    if not step['with_limb']:
        return 0
    return len(step['skeletons']) if step.get('skeletons') is not None else DEFAULT_LIMBS


def _fold(shape: tuple[int, ...], clips: int, clip_len: int, key: str) -> tuple[int, ...]:
    """MMAction2's ``reshape((-1, num_clips, clip_len) + ...)``: frames -> views (crops x
    clips) of ``clip_len`` frames."""
    if shape[0] % (clips * clip_len):
        raise Stop(f'FormatShape cannot fold {shape[0]} {key} frames into clips of '
                   f'{clips} x {clip_len}')
    return (shape[0] // clip_len,)


def _format(state: _State, step: dict[str, Any], problems: list[str]) -> None:
    """``FormatShape``: ``NCTHW`` (RGB clips, with heat maps alongside), ``NCTHW_Heatmap``
    (heat maps in ``imgs``) or ``NCHW`` (frames as segments)."""
    shape_format = step.get('input_format')
    if shape_format not in ('NCTHW', 'NCTHW_Heatmap', 'NCHW'):
        raise Stop(f'FormatShape(input_format={shape_format!r}) is not followed by the shape '
                   "pass (it follows 'NCTHW', 'NCTHW_Heatmap' and 'NCHW')")
    if 'imgs' not in state.arrays:
        problems.append('FormatShape needs imgs, but no transform before it makes them '
                        '(MMDecode decodes the video)')
        raise Stop('FormatShape has no imgs to format')
    clip = state.clip_len['RGB'] if isinstance(state.clip_len, dict) else state.clip_len
    if shape_format == 'NCHW':  # (frames, H, W, C) -> (frames, C, H, W): frames are segments
        frames, height, width, channels = state.arrays['imgs']
        state.arrays['imgs'] = (frames, channels, height, width)
    elif shape_format == 'NCTHW_Heatmap':  # heat maps are (frames, K, H, W) already
        frames, channels, height, width = state.arrays['imgs']
        views = _fold(state.arrays['imgs'], state.num_clips, int(clip), 'imgs')
        state.arrays['imgs'] = (*views, channels, int(clip), height, width)
    else:
        frames, height, width, channels = state.arrays['imgs']
        views = _fold(state.arrays['imgs'], state.num_clips, int(clip), 'imgs')
        state.arrays['imgs'] = (*views, channels, int(clip), height, width)
    if 'heatmap_imgs' in state.arrays:
        if not isinstance(state.clip_len, dict) or 'Pose' not in state.clip_len:
            problems.append(f'FormatShape formats heatmap_imgs by clip_len["Pose"], but the '
                            f'sampler gives clip_len={state.clip_len}')
            raise Stop('FormatShape cannot format heatmap_imgs')
        frames, channels, height, width = state.arrays['heatmap_imgs']
        clip = int(state.clip_len['Pose'])
        views = _fold(state.arrays['heatmap_imgs'], state.num_clips, clip, 'heatmap_imgs')
        state.arrays['heatmap_imgs'] = (*views, channels, clip, height, width)
    state.formatted = True


def _skeleton_features(state: _State, step: dict[str, Any]) -> None:
    """``GenSkeFeat``: the dataset's skeleton layout fixes the joints (MMAction2's ``Graph``),
    each feature (``j``, ``b``, ``jm``, ``bm``) gives three coordinates per joint."""
    from mmaction.models.utils import Graph

    state.joints = int(Graph(layout=step['dataset']).num_node)
    state.coords = COORDS_PER_FEATURE * len(step['feats'])


def _format_gcn(state: _State, step: dict[str, Any]) -> None:
    """``FormatGCNInput``: skeletons -> ``(num_clips, M, clip_len, J, C)``."""
    if not state.keypoints:
        raise Stop('FormatGCNInput comes before any transform decodes the skeletons')
    if state.joints is None or state.coords is None:
        raise Stop('the joints and coordinates per joint depend on the annotations here '
                   '(no GenSkeFeat names the skeleton layout)')
    state.arrays['keypoint'] = (state.num_clips, int(step['num_person']),
                                state.frames('keypoint') // state.num_clips, state.joints,
                                state.coords)
    state.formatted = True


def _pack(state: _State, step: dict[str, Any], problems: list[str]
          ) -> dict[str, tuple[int, ...]] | tuple[int, ...]:
    if not state.formatted:
        raise Stop('PackActionInputs comes before FormatShape')
    keys = step['collect_keys']
    if keys is None:  # MMAction2 packs the first of these it finds
        packed = next((key for key in ('imgs', 'heatmap_imgs', 'keypoint')
                       if key in state.arrays), None)
        if packed is None:
            raise Stop('PackActionInputs finds no imgs, heatmap_imgs or keypoint to pack')
        return state.arrays[packed]
    missing = [key for key in keys if key not in state.arrays]
    if missing:
        problems.append(f'PackActionInputs collects {", ".join(missing)}, which no transform '
                        'before it makes (GeneratePoseTarget makes heatmap_imgs once the video '
                        'is decoded)')
        raise Stop('PackActionInputs cannot pack what it collects')
    return {key: state.arrays[key] for key in keys}


def _step(state: _State, kind: str, step: dict[str, Any], problems: list[str]) -> None:
    """Apply one transform's effect on shapes to ``state``; raise :class:`Stop` where it
    cannot be told."""
    if kind in SAMPLERS:
        state.clip_len, state.num_clips = step.get('clip_len'), int(step['num_clips'])
        if state.clip_len is None:
            raise Stop(f'{kind} has no clip_len')
        state.sampled = True
    elif kind in ('MMDecode', 'PoseDecode', *VIDEO_DECODERS):
        if not state.sampled:
            raise Stop(f'{kind} comes before any sampler')
        if kind != 'PoseDecode':
            state.arrays['imgs'] = (state.frames('RGB') if isinstance(state.clip_len, dict)
                                    else state.frames('imgs'), 0, 0, 3)
            state.size, state.sized_by = None, 'the video'
        state.keypoints = state.keypoints or kind in ('MMDecode', 'PoseDecode')
    elif kind in UNSIZED:
        state.size, state.sized_by = None, UNSIZED[kind]
        ratio = step.get('hw_ratio') if kind in COMPACTS else None
        state.aspect = (float(ratio[0] if isinstance(ratio, (list, tuple)) else ratio)
                        if ratio is not None else None)
    elif kind == 'Resize':
        _resize(state, step)
    elif kind in ('CenterCrop', *MULTI_CROPS):
        _crop(state, _pair(step['crop_size']))
        if kind in MULTI_CROPS and 'imgs' in state.arrays:
            frames, *rest = state.arrays['imgs']
            state.arrays['imgs'] = (frames * MULTI_CROPS[kind], *rest)
    elif kind == 'RandomCrop':
        _crop(state, _pair(step['size']))
    elif kind == 'GeneratePoseTarget':
        _heatmaps(state, step)
    elif kind == 'FormatShape':
        _format(state, step, problems)
    elif kind == 'GenSkeFeat':
        _skeleton_features(state, step)
    elif kind == 'FormatGCNInput':
        _format_gcn(state, step)
    elif kind not in UNCHANGED:
        raise Stop('unknown to the shape pass, which cannot tell what it does to shapes')


def derive(pipeline: list[dict], split: str = 'train',
           keypoints: int = NUM_KEYPOINTS) -> Derived:
    """The shapes ``pipeline`` packs per sample, or where and why the pass stopped, for
    skeletons of ``keypoints`` key points."""
    derived = Derived(split, list(pipeline))
    state = _State(keypoint_count=keypoints)
    for number, raw in enumerate(pipeline, 1):
        kind = str(raw.get('type'))
        step = parameters(raw)
        try:
            if kind == 'PackActionInputs':
                derived.inputs = _sized(_pack(state, step, derived.problems), state)
                return derived
            _step(state, kind, step, derived.problems)
        except Stop as stop:
            derived.stopped = f'transform {number} ({kind}): {stop}'
            return derived
        except (KeyError, TypeError, ValueError, IndexError) as exc:  # a parameter it cannot read
            derived.stopped = (f'transform {number} ({kind}): its parameters cannot be read by '
                               f'the shape pass ({type(exc).__name__}: {exc})')
            return derived
    derived.stopped = 'no PackActionInputs: the pipeline packs no model inputs'
    return derived


def _sized(inputs: dict[str, tuple[int, ...]] | tuple[int, ...], state: _State
           ) -> dict[str, tuple[int, ...]] | tuple[int, ...]:
    """Frame sizes filled in where the decoders left them open (``imgs`` take ``img_shape``)."""
    def fill(shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) in (4, 5) and shape[-2:] == (0, 0):  # frames sized by the decoder
            return (*shape[:-2], *state.need_size('PackActionInputs'))
        return shape

    if isinstance(inputs, dict):
        return {key: fill(shape) for key, shape in inputs.items()}
    return fill(inputs)


def keypoints_of(cfg: Any) -> int:
    """Key points per person. The data decides them, not a transform, so they are read as
    the synthetic batch reads them (:func:`epam_guard.model.batch.heatmap_channels`: the pose
    stream's declared channels, the key points ``GeneratePoseTarget`` names, else COCO's
    17), less the train pipeline's limbs: every pipeline is judged on the same skeletons."""
    target = step_of(pipeline_of(cfg, 'train'), ('GeneratePoseTarget',))
    if target is None or not parameters(target)['with_kp']:
        return NUM_KEYPOINTS
    step = parameters(target)
    channels, _, _ = heatmap_channels(target, cfg.model.get('backbone'))
    return max(channels - _limbs(step), 1)


def derive_config(cfg: Any) -> dict[str, Derived]:
    """:func:`derive` for each of the config's train, val and test pipelines it has."""
    keypoints = keypoints_of(cfg)
    return {split: derive(pipeline_of(cfg, split), split, keypoints) for split in SPLITS
            if pipeline_of(cfg, split)}


#: What a one-tensor kind's model fixes in each sample, by axis letter
#: (:class:`~epam_guard.model.kinds.InputKind`), and the words a finding uses for it.
FIXED_AXES = {'C': 'channels', 'J': 'joints'}


def kind_findings(inputs: dict[str, tuple[int, ...]] | tuple[int, ...], recipe: Any,
                  cfg: Any) -> list[str]:
    """What is wrong with one pipeline's packed sample for a model of a one-tensor kind
    (``recipe.kind``), in words: a dict where the model takes one tensor, another number of
    axes (a ``FormatShape`` for another kind), other channels or joints than the model
    declares, or (``NCHW``) segments the head cannot fold into its ``num_segments``."""
    kind = recipe.input_kind
    want = recipe.shapes(1)[kind.keys[0]]
    axes = kind.axes[0]
    if isinstance(inputs, dict):
        return [f'PackActionInputs packs {", ".join(inputs)}, but {recipe.recognizer} takes '
                f'one {kind.name} tensor per sample ({kind.keys[0]})']
    if len(inputs) != len(axes):
        return [f'the sample is {len(inputs)}-D ({"x".join(map(str, inputs))}), but '
                f'{recipe.recognizer} takes {kind.name} samples of {len(axes)} axes ({axes}): '
                'the pipeline formats for another kind of model (FormatShape input_format, '
                'FormatGCNInput)']
    problems = [f'{inputs[i]} {FIXED_AXES[letter]} per {kind.keys[0]} ({axes} '
                f'{"x".join(map(str, inputs))}), but the model takes {want[i]}'
                for i, letter in enumerate(axes) if letter in FIXED_AXES and inputs[i] != want[i]]
    head = cfg.model.get('cls_head') or {}
    segments = head.get('num_segments', signature_default(head.get('type'), 'num_segments'))
    if 'S' in axes and isinstance(segments, int) and inputs[0] % segments:
        problems.append(f'{inputs[0]} segments per sample, which cls_head.num_segments '
                        f'{segments} does not divide: the head folds them by {segments}')
    return problems
