"""Check ``pipeline``: the config's own train, val and test pipelines feed the model.

CONTRACT §1. Synthetic data in the format of the config's own datasets
(:mod:`epam_guard.fixtures.datasets`, in a temporary folder) goes through each
pipeline at the config's real sizes, one transform at a time (so a transform
that raises is named), is collated with ``pseudo_collate`` and preprocessed by
the model's data preprocessor, as the real loop does. What comes out is
compared with what the model takes (its input kind, :mod:`epam_guard.model.kinds`,
read from its data preprocessor and recognizer type, not from the pipelines
under test), in plain words, before any tensor reaches the model:

- one tensor per sample, or the dict of modalities a multimodal model takes
  (``PackActionInputs.collect_keys``), nothing missing and nothing extra;
- the kind's axes per sample (``SCHW`` segments for 2-D models, ``VCTHW``
  clips, ``VMTJC`` skeletons);
- channels: the backbone's ``in_channels`` (declared, else its default) for a
  one-tensor model; for a multimodal one the RGB channels of the batch recipe
  and the heat-map channels the backbone declares for its pose stream
  (``backbone.pose_stream.in_channels``, ``pose_pathway``, ...);
- views per sample = the pipeline's ``num_clips`` (times a multi-crop's crops,
  times 2 for ``GeneratePoseTarget(double=True)``); a 2-D model's segments =
  views x ``clip_len``;
- for the RGB + heat-map pair: the same views, pose frames = k x RGB frames
  with the k the guard's other checks use (the training pipeline's
  ``clip_len`` ratio), and RGB side / 32 = heat-map side / 8, a whole number;
- float32 after preprocessing; labels as annotated, within ``[0, num_classes)``.

Batches that match are then fed to the model without gradients: the train
batch (2 samples) in loss mode, and in predict mode the val batch (2 samples,
1 view each) and the test batch (1 sample, 5 views) - but when both make
clips of the same shape only the one with fewer clips runs. At NTU size on a
2-core CPU the 5-view test batch costs about 8 s against 2 s for the val
batch, and a second predict pass on the same clip shape proves nothing new:
folding V views into the batch is what the ``structure`` and ``routing``
checks exercise with the test pipeline's V.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ..contract.profiles import PREDICTION_FIELDS, Rule
from ..model.batch import POSE_STRIDE, RGB_STRIDE, declared_channels, read_label, step_of
from ..model.context import GuardContext
from ..model.passes import prediction_of
from ..probe.describe import short
from ..probe.isolation import cpu_math, mmengine_instances, quiet_console
from ..report.result import CheckResult, Finding, conclude
from ._launch import LOADERS, SAMPLERS, expected_views, loader_pipeline, located, synthetic_config

#: The two-stream layout whose streams must meet (EPAM, RGBPoseConv3D): RGB and heat maps.
TWO_STREAM = ('imgs', 'heatmap_imgs')
#: Samples per batch: enough to collate, few enough for NTU-size passes on a CPU.
SAMPLES = {'train': 2, 'val': 2, 'test': 1}
MODES = {'train': 'loss', 'val': 'predict', 'test': 'predict'}
#: What each axis letter of :mod:`epam_guard.model.kinds` means, for messages.
AXES = {'V': 'views', 'S': 'segments', 'C': 'channels', 'T': 'frames', 'H': 'height',
        'W': 'width', 'M': 'persons', 'J': 'joints'}


def expectations(ctx: GuardContext) -> dict[str, Any]:
    """What the model takes: its input kind (the batch recipe's), and for the multimodal
    kind the channels per key, from the model config and the guard's batch recipe."""
    kind = ctx.recipe.input_kind
    expect: dict[str, Any] = {
        'kind': kind.name, 'keys': list(kind.keys), 'axes': dict(zip(kind.keys, kind.axes)),
        'packed': kind.packed, 'num_classes': ctx.recipe.num_classes,
    }
    if kind.packed:
        backbone = ctx.cfg.model.get('backbone') or {}
        channels = {key: ((ctx.recipe.rgb_channels, 'the RGB stream') if stream == 'rgb'
                          else declared_channels(backbone, 'pose'))
                    for key, stream in zip(kind.keys, kind.streams)}
        expect['channels'] = {key: value for key, (value, _) in channels.items()}
        expect['channel_sources'] = {key: where for key, (_, where) in channels.items()}
    else:
        expect['sample'] = list(ctx.recipe.shapes(1)[kind.keys[0]])
    if kind.packed and tuple(kind.keys) == TWO_STREAM:
        expect['ratio'] = ctx.recipe.pose_frames // ctx.recipe.rgb_frames
    return expect


def frames_per_view(pipeline: list[dict]) -> int:
    """Frames each view of a 2-D model's segments holds (the sampler's RGB ``clip_len``)."""
    sampler = step_of(pipeline, SAMPLERS) or {}
    clip_len = sampler.get('clip_len', 1)
    return int(clip_len.get('RGB', 1) if isinstance(clip_len, dict) else clip_len)


def fetch(dataset: Any, index: int) -> dict[str, Any]:
    """Item ``index`` through the dataset's pipeline, one transform at a time.

    Raises:
        RuntimeError: naming the transform that raised or dropped the sample.
    """
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', None)
    if transforms is None:
        return dataset[index]
    data = dataset.get_data_info(index)
    for number, transform in enumerate(transforms, 1):
        try:
            data = transform(data)
        except Exception as exc:
            raise RuntimeError(f'transform {number} ({type(transform).__name__}) raised '
                               f'{located(exc)}') from exc
        if data is None:
            raise RuntimeError(f'transform {number} ({type(transform).__name__}) dropped the '
                               'sample (returned None)')
    return data


def _axis_findings(key: str, value: Any, axes: str, pipeline: list[dict],
                   expect: dict[str, Any]) -> list[str]:
    """One packed tensor against the axes and channels the model takes."""
    if not (isinstance(value, torch.Tensor) and value.dim() == len(axes)):
        return [f'{key} is {short(value)}, but the model ({expect["kind"]} inputs) takes '
                f'({", ".join(axes)}) per sample: {", ".join(AXES[a] for a in axes)}']
    problems = []
    wanted = expect.get('channels', {}).get(key)
    where = expect.get('channel_sources', {}).get(key)
    got = int(value.shape[axes.index('C')])
    if wanted is not None and got != wanted:
        maker = ' (GeneratePoseTarget)' if key == 'heatmap_imgs' else ''
        problems.append(f'{key} has {got} channels{maker}, but {where} is {wanted}')
    clips = expected_views(pipeline)
    if clips is not None:
        first = int(value.shape[0])
        if axes[0] == 'S' and first != clips * frames_per_view(pipeline):
            problems.append(f'{key} packs {first} segments per sample, but the pipeline samples '
                            f'{clips} clips of {frames_per_view(pipeline)} frames (num_clips x '
                            'clip_len, times ThreeCrop/TenCrop crops)')
        elif axes[0] == 'V' and first != clips:
            problems.append(f'{first} views per sample, but the pipeline samples {clips} clips '
                            '(num_clips, times ThreeCrop/TenCrop crops)')
    return problems


def _two_stream_findings(inputs: dict[str, Any], pipeline: list[dict],
                         expect: dict[str, Any]) -> list[str]:
    """RGB and heat-map clips that meet: same views, k pose frames per RGB frame, and the
    streams' spatial outputs (/32 and /8) equal whole numbers."""
    imgs, heat = inputs['imgs'], inputs['heatmap_imgs']
    (views, _, frames, height, width) = imgs.shape
    (heat_views, _, heat_frames, heat_height, heat_width) = heat.shape
    problems = []
    if views != heat_views:
        problems.append(f'imgs packs {views} views per sample and heatmap_imgs {heat_views}; '
                        'the recognizer folds both the same way')
    ratio = expect['ratio']
    if heat_frames != ratio * frames:
        sampler = step_of(pipeline, ('MMUniformSampleFrames',)) or {}
        problems.append(f'heatmap_imgs has {heat_frames} frames and imgs {frames}: the model '
                        f'takes {ratio} pose frames per RGB frame ({ratio * frames} for '
                        f'{frames}; the pose attention groups them by T_pose / T_rgb); '
                        f'clip_len is {sampler.get("clip_len")}')
    rgb_out = (height / RGB_STRIDE, width / RGB_STRIDE)
    pose_out = (heat_height / POSE_STRIDE, heat_width / POSE_STRIDE)
    if rgb_out != pose_out or not all(float(v).is_integer() for v in rgb_out):
        problems.append(
            f'imgs is {height}x{width} and heatmap_imgs {heat_height}x{heat_width}: the RGB '
            f'stream makes {rgb_out[0]:g}x{rgb_out[1]:g} (/ {RGB_STRIDE}) and the pose stream '
            f'{pose_out[0]:g}x{pose_out[1]:g} (/ {POSE_STRIDE}); they must be the same whole '
            'numbers (a crop divisible by 32 and GeneratePoseTarget scaling=0.25)')
    return problems


def sample_findings(inputs: Any, pipeline: list[dict],
                    expect: dict[str, Any]) -> list[str]:
    """What is wrong with one packed sample's inputs, in words (empty when it fits)."""
    keys, kind = expect['keys'], expect['kind']
    collect = f"PackActionInputs(collect_keys={tuple(keys)!r})"
    if expect['packed'] and not isinstance(inputs, dict):
        return [f'PackActionInputs packed one {short(inputs)}, but the model ({kind}) takes '
                f'inputs = dict({", ".join(f"{k}=..." for k in keys)}): set {collect}']
    if not expect['packed']:  # the views; its axes and channels: tensor_findings
        return _axis_findings('inputs', inputs, expect['axes'][keys[0]], pipeline, expect)
    missing = [key for key in keys if key not in inputs]
    if missing:
        return [f'PackActionInputs packed {sorted(inputs)}, without {", ".join(missing)}: '
                f'add it to {collect} and make sure a transform produces it '
                '(GeneratePoseTarget for heatmap_imgs)']
    extra = [key for key in inputs if key not in keys]
    if extra:
        return [f'PackActionInputs packed {sorted(inputs)}, but the model ({kind}) takes only '
                f'{list(keys)}: drop {", ".join(extra)} from its collect_keys']
    problems = [p for key in keys
                for p in _axis_findings(key, inputs[key], expect['axes'][key], pipeline, expect)]
    shaped = all(isinstance(inputs[key], torch.Tensor)
                 and inputs[key].dim() == len(expect['axes'][key]) for key in keys)
    if shaped and 'ratio' in expect:  # every defect at once: channels and sizes alike
        problems += _two_stream_findings(inputs, pipeline, expect)
    return problems


def tensor_findings(ctx: GuardContext, inputs: Any, pipeline: list[dict],
                    expect: dict[str, Any]) -> list[str]:
    """:func:`sample_findings` for a one-tensor kind: the axes, channels, joints and segments
    the model fixes are judged by the ``pipe_shapes`` check's own rules
    (:func:`epam_guard.model.pipeline_shapes.kind_findings`), the views here."""
    from ..model.pipeline_shapes import kind_findings

    if isinstance(inputs, dict) or not isinstance(inputs, torch.Tensor):
        shapes: Any = ({key: tuple(value.shape) for key, value in inputs.items()}
                       if isinstance(inputs, dict) else None)
        if shapes is None:
            return [f'PackActionInputs packed {short(inputs)}, but the model '
                    f'({expect["kind"]}) takes one tensor per sample']
        return kind_findings(shapes, ctx.recipe, ctx.cfg)
    problems = kind_findings(tuple(inputs.shape), ctx.recipe, ctx.cfg)
    return problems or sample_findings(inputs, pipeline, expect)


def input_tensors(inputs: Any) -> dict[str, Any]:
    """The tensors of packed or preprocessed inputs by key (``inputs`` for one tensor)."""
    return dict(inputs) if isinstance(inputs, dict) else {'inputs': inputs}


def batch_findings(batch: dict[str, Any], data: dict[str, Any],
                   expect: dict[str, Any]) -> list[str]:
    """What is wrong with the collated and preprocessed batch (empty when it fits)."""
    inputs = data.get('inputs')
    if expect['packed'] and not isinstance(inputs, dict):
        return [f'the data preprocessor returned inputs of type {type(inputs).__name__}, not '
                'a dict (model.data_preprocessor must be MultiModalDataPreprocessor)']
    dims = {key if expect['packed'] else 'inputs': len(axes) + 1
            for key, axes in expect['axes'].items()}
    tensors = input_tensors(inputs)
    problems = []
    for key, want in dims.items():
        value = tensors.get(key)
        if not isinstance(value, torch.Tensor) or value.dim() != want:
            problems.append(f'after preprocessing {key} is {short(value)}, but the model '
                            f'takes {want} dimensions (N and the per-sample axes)')
        elif value.dtype != torch.float32:
            problems.append(f'after preprocessing {key} is {short(value)}; the model takes '
                            'float32')
    if problems:
        return problems
    leading = {tuple(value.shape[:2]) for value in tensors.values()}
    if expect['packed'] and len(leading) > 1:
        problems.append('after preprocessing ' + ' and '.join(
            f'{key} is {short(value)}' for key, value in tensors.items()) + ': (N, V) must agree')
    samples = len(batch['data_samples'])
    first = next(iter(tensors.values()))
    if not problems and first.shape[0] != samples:
        problems.append(f'{samples} data samples for a batch of {first.shape[0]}')
    return problems


def label_findings(samples: list[Any], annotated: tuple[int, ...] | None,
                   num_classes: int) -> list[str]:
    """Labels the pipeline delivers: as annotated, 0-based, in range."""
    problems = []
    for index, sample in enumerate(samples):
        try:
            label = read_label(sample)
        except Exception as exc:  # a data sample without a readable label
            problems.append(f'sample {index} has no readable label ({located(exc)})')
            continue
        if not 0 <= label < num_classes:
            problems.append(f'sample {index} has label {label}, outside [0, {num_classes})')
        elif annotated is not None and index < len(annotated) and label != annotated[index]:
            problems.append(f'sample {index} has label {label}, but its annotation says '
                            f'{annotated[index]}')
    return problems


def load_batch(ctx: GuardContext, cfg: Any, split: str, synthetic: Any
               ) -> tuple[dict[str, Any] | None, list[str], dict[str, Any]]:
    """Build the split's dataset, run its pipeline on a few samples and collate them.

    Returns:
        tuple: the collated batch (None when it could not be made), the problems
        found, and what was seen.
    """
    from mmaction.registry import DATASETS
    from mmengine.dataset import pseudo_collate

    loader = cfg.get(LOADERS[split])
    pipeline = loader_pipeline(cfg, split)
    expect = expectations(ctx)
    seen: dict[str, Any] = {'dataset': synthetic.kinds.get(LOADERS[split])}
    try:
        dataset = DATASETS.build(loader['dataset'])
    except Exception as exc:  # the user's dataset config: any error is a finding
        return None, [f'the dataset cannot be built: {located(exc)}'], seen
    if len(dataset) == 0:
        return None, ['the dataset is empty on the synthetic data (does its split name exist? '
                      f'the synthetic annotation file has {", ".join(synthetic.splits)})'], seen
    items = []
    for index in range(SAMPLES[split]):
        try:
            items.append(fetch(dataset, index % len(dataset)))
        except Exception as exc:
            return None, [f'sample {index}: {exc}'], seen
    problems = []
    for index, item in enumerate(items):
        found = (sample_findings(item.get('inputs'), pipeline, expect) if expect['packed']
                 else tensor_findings(ctx, item.get('inputs'), pipeline, expect))
        problems += [f'sample {index}: {p}' if index else p for p in found]
        if found:
            break
    inputs = input_tensors(items[0].get('inputs'))
    seen['sample'] = {key: short(value) for key, value in inputs.items()}
    if not problems:
        for index, item in enumerate(items[1:], 1):
            other = input_tensors(item.get('inputs'))
            problems += [f'samples 0 and {index} differ in {key}: {short(value)} vs '
                         f'{short(other[key])}' for key, value in inputs.items()
                         if other[key].shape != value.shape]
    batch = pseudo_collate(items)
    annotated = synthetic.loader_labels.get(LOADERS[split])
    problems += label_findings(batch['data_samples'], annotated, ctx.recipe.num_classes)
    return batch, problems, seen


def model_pass(ctx: GuardContext, split: str, data: dict[str, Any]) -> list[Finding]:
    """Feed a matching batch to the model in the split's mode, without gradients."""
    model: Any = ctx.model  # a BaseRecognizer: parse_losses, data_preprocessor
    mode = MODES[split]
    model.train(mode == 'loss')
    where = f'{split} batch ' + ', '.join(short(value) for value in
                                          input_tensors(data['inputs']).values())
    try:
        with torch.no_grad():
            output = model(**data, mode=mode)
            if mode == 'loss':
                total, _ = model.parse_losses(output)
    except Exception as exc:
        return [Finding(Rule.INPUTS,
            f'{where}: the model raised in {mode} mode on inputs that match '
            f'the checks above: {located(exc)}')]
    if mode == 'loss' and not math.isfinite(float(total)):
        return [Finding(Rule.HEAD, f'{where}: the total loss is {float(total)}')]
    if mode == 'predict':
        count = len(data['data_samples'])
        if not isinstance(output, (list, tuple)) or len(output) != count or not all(
                prediction_of(sample)[0] for sample in output):
            return [Finding(Rule.HEAD, f'{where}: predict must return {count} data samples with a '
                                       f'{" or ".join(PREDICTION_FIELDS)}, but returned '
                                       f'{type(output).__name__}')]
    return []


def clip_shapes(data: dict[str, Any]) -> tuple[tuple[int, ...], ...]:
    """Per-clip shapes (every axis after N and V) of each input."""
    return tuple(tuple(value.shape[2:]) for value in input_tensors(data['inputs']).values())


def describe_sizes(ready: dict[str, dict[str, Any]], per_sample: str = 'V') -> str:
    """``clips imgs 3x16x224x224, heatmap_imgs 17x48x56x56; train N=2 V=1, ...``; the second
    axis is named ``per_sample`` (``S``: a 2-D model's segments)."""
    def dims(size: tuple[int, ...]) -> str:
        return 'x'.join(str(v) for v in size)

    def leading(data: dict[str, Any]) -> Any:
        return next(iter(input_tensors(data['inputs']).values())).shape

    clips = {clip_shapes(data) for data in ready.values()}
    batches = ', '.join(f'{split} N={leading(data)[0]} {per_sample}={leading(data)[1]}'
                        for split, data in ready.items())
    if len(clips) != 1:
        return batches
    keys = input_tensors(next(iter(ready.values()))['inputs'])
    shapes = ', '.join(f'{key} {dims(size)}' for key, size in zip(keys, clips.pop()))
    return f'clips {shapes}; {batches}'


def redundant(ready: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Predict batches whose clip shapes a cheaper predict batch already covers.

    Returns:
        dict: split -> the split whose batch (fewest clips, N x V) stands in for it.
    """
    def clips(split: str) -> int:
        return math.prod(next(iter(input_tensors(ready[split]['inputs']).values())).shape[:2])

    eval_splits = sorted((s for s in ready if MODES[s] == 'predict'), key=clips)
    skipped: dict[str, str] = {}
    for index, split in enumerate(eval_splits):
        cheaper = next((kept for kept in eval_splits[:index] if kept not in skipped
                        and clip_shapes(ready[kept]) == clip_shapes(ready[split])), None)
        if cheaper is not None:
            skipped[split] = cheaper
    return skipped


def check(ctx: GuardContext) -> CheckResult:
    """The config's pipelines make what the model takes, and the model takes it.

    The default scope it sets and the loggers its datasets make are put back.
    """
    with mmengine_instances():
        return _check(ctx)


def _check(ctx: GuardContext) -> CheckResult:
    from mmengine.registry import init_default_scope

    findings: list[Finding] = []
    details: dict[str, Any] = {'expected': expectations(ctx), 'splits': {}}
    init_default_scope(ctx.cfg.get('default_scope', 'mmaction'))
    with tempfile.TemporaryDirectory(prefix='epam-guard-pipeline-') as root:
        cfg, synthetic = synthetic_config(ctx.cfg, Path(root), num_train=SAMPLES['train'],
                                          num_val=SAMPLES['val'], seed=ctx.settings.seed,
                                          num_classes=ctx.recipe.num_classes)
        details['data'] = synthetic.describe()
        ready: dict[str, dict[str, Any]] = {}
        for split in LOADERS:
            start = time.perf_counter()
            if not (cfg.get(LOADERS[split]) or {}).get('dataset'):
                details['splits'][split] = {'skipped': f'no {LOADERS[split]}.dataset'}
                continue
            with quiet_console():
                batch, problems, seen = load_batch(ctx, cfg, split, synthetic)
            if batch is not None and not problems:
                training = MODES[split] == 'loss'
                preprocessor: Any = ctx.model.data_preprocessor
                try:
                    data = preprocessor(batch, training)
                except Exception as exc:
                    problems.append(f'the data preprocessor raised {located(exc)}')
                else:
                    problems += batch_findings(batch, data, details['expected'])
                    seen['batch'] = {key: short(value)
                                     for key, value in input_tensors(data['inputs']).items()}
                    if not problems:
                        ready[split] = data
            findings += [Finding(Rule.INPUTS,
                f'{split} pipeline: {problem}') for problem in problems]
            seen['seconds'] = round(time.perf_counter() - start, 2)
            details['splits'][split] = seen
        sizes = describe_sizes(ready, ctx.recipe.input_kind.axes[0][0])
        for split, kept in redundant(ready).items():
            del ready[split]
            details['splits'][split]['model'] = (f'same clip shapes as the {kept} batch, '
                                                 'which has fewer clips: not re-run')
        with cpu_math(ctx.device):
            for split, data in ready.items():
                start = time.perf_counter()
                findings += model_pass(ctx, split, data)
                details['splits'][split]['model'] = (
                    f'{MODES[split]} mode, {time.perf_counter() - start:.2f} s')
    fed = ', '.join(f'{split} ({MODES[split]})' for split in ready) or 'none'
    return conclude('pipeline', findings,
                    f'{", ".join(details["splits"])} pipelines make what the model takes '
                    f'({sizes}); fed to the model: {fed}', details)
