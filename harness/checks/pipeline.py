"""Check ``pipeline``: the config's own train, val and test pipelines feed the model.

CONTRACT §1. Synthetic NTU-60 data (``fixtures``, in a temporary folder) goes
through each pipeline at the config's real sizes, one transform at a time (so
a transform that raises is named), is collated with ``pseudo_collate`` and
preprocessed by the model's data preprocessor, as the real loop does. What
comes out is compared with what the model takes, in plain words, before any
tensor reaches the model:

- the modalities ``imgs`` and ``heatmap_imgs`` (``PackActionInputs.collect_keys``);
- the RGB channels of the batch recipe, and the heat-map channels the backbone declares for
  its pose stream (``backbone.pose_stream.in_channels``, ``pose_pathway``, ...);
- pose frames = k x RGB frames, with the k the guard's other checks use
  (the training pipeline's ``clip_len`` ratio);
- RGB side / 32 = heat-map side / 8, a whole number;
- views per sample = the pipeline's ``num_clips`` (times a multi-crop's crops),
  the same for both modalities;
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

from ..batch import POSE_STRIDE, RGB_STRIDE, declared_channels, pipeline_of, read_label, step_of
from ..context import GuardContext
from ..contract import PREDICTION_FIELDS, Rule
from ..describe import short
from ..isolation import cpu_math, mmengine_instances, quiet_console
from ..result import CheckResult, Finding, conclude
from ._launch import LOADERS, expected_views, located, synthetic_config
from .common import prediction_of

MODALITIES = ('imgs', 'heatmap_imgs')
#: Samples per batch: enough to collate, few enough for NTU-size passes on a CPU.
SAMPLES = {'train': 2, 'val': 2, 'test': 1}
MODES = {'train': 'loss', 'val': 'predict', 'test': 'predict'}


def expectations(ctx: GuardContext) -> dict[str, Any]:
    """What the model takes, from the model config and the guard's batch recipe."""
    backbone = ctx.cfg.model.get('backbone') or {}
    heatmaps, key = declared_channels(backbone, 'pose')
    return {
        'rgb_channels': ctx.recipe.rgb_channels,
        'heatmap_channels': heatmaps,
        'heatmap_key': key,
        'ratio': ctx.recipe.pose_frames // ctx.recipe.rgb_frames,
        'num_classes': ctx.recipe.num_classes,
    }


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


def sample_findings(inputs: Any, pipeline: list[dict],
                    expect: dict[str, Any]) -> list[str]:
    """What is wrong with one packed sample's inputs, in words (empty when it fits)."""
    if not isinstance(inputs, dict):
        return [f'PackActionInputs packed one {short(inputs)}, but the model takes '
                "inputs = dict(imgs=..., heatmap_imgs=...): set PackActionInputs("
                "collect_keys=('imgs', 'heatmap_imgs'))"]
    missing = [key for key in MODALITIES if key not in inputs]
    if missing:
        return [f'PackActionInputs packed {sorted(inputs)}, without {", ".join(missing)}: '
                "add it to PackActionInputs(collect_keys=('imgs', 'heatmap_imgs')) and make "
                'sure a transform produces it (GeneratePoseTarget for heatmap_imgs)']
    imgs, heat = inputs['imgs'], inputs['heatmap_imgs']
    problems = [f'{key} is {short(value)}, but the model takes (V, C, T, H, W) per sample '
                "(FormatShape(input_format='NCTHW'))"
                for key, value in inputs.items() if key in MODALITIES
                and not (isinstance(value, torch.Tensor) and value.dim() == 5)]
    if problems:
        return problems
    (views, channels, frames, height, width) = imgs.shape
    (heat_views, heat_channels, heat_frames, heat_height, heat_width) = heat.shape
    if channels != expect['rgb_channels']:
        problems.append(f'imgs has {channels} channels, but the RGB stream takes '
                        f'{expect["rgb_channels"]}')
    wanted = expect['heatmap_channels']
    if wanted is not None and heat_channels != wanted:
        problems.append(f'heatmap_imgs has {heat_channels} channels (GeneratePoseTarget), but '
                        f'{expect["heatmap_key"]} is {wanted}')
    clips = expected_views(pipeline)
    if views != heat_views:
        problems.append(f'imgs packs {views} views per sample and heatmap_imgs {heat_views}; '
                        'the recognizer folds both the same way')
    elif clips is not None and views != clips:
        problems.append(f'{views} views per sample, but the pipeline samples {clips} clips '
                        '(num_clips, times ThreeCrop/TenCrop crops)')
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


def batch_findings(batch: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """What is wrong with the collated and preprocessed batch (empty when it fits)."""
    problems = []
    inputs = data.get('inputs')
    if not isinstance(inputs, dict):
        return [f'the data preprocessor returned inputs of type {type(inputs).__name__}, not '
                'a dict (model.data_preprocessor must be MultiModalDataPreprocessor)']
    for key in MODALITIES:
        value = inputs.get(key)
        if not isinstance(value, torch.Tensor) or value.dim() != 6:
            problems.append(f'after preprocessing {key} is {short(value)}, but the model '
                            'takes (N, V, C, T, H, W)')
        elif value.dtype != torch.float32:
            problems.append(f'after preprocessing {key} is {short(value)}; the model takes '
                            'float32')
    if not problems and inputs['imgs'].shape[:2] != inputs['heatmap_imgs'].shape[:2]:
        problems.append(f'after preprocessing imgs is {short(inputs["imgs"])} and '
                        f'heatmap_imgs {short(inputs["heatmap_imgs"])}: (N, V) must agree')
    samples = len(batch['data_samples'])
    if not problems and inputs['imgs'].shape[0] != samples:
        problems.append(f'{samples} data samples for a batch of {inputs["imgs"].shape[0]}')
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
    pipeline = pipeline_of(cfg, split)
    seen: dict[str, Any] = {}
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
        found = sample_findings(item.get('inputs'), pipeline, expectations(ctx))
        problems += [f'sample {index}: {p}' if index else p for p in found]
        if found:
            break
    inputs = items[0].get('inputs')
    if isinstance(inputs, dict):
        seen['sample'] = {key: short(value) for key, value in inputs.items()}
    if not problems and isinstance(inputs, dict):
        for index, item in enumerate(items[1:], 1):
            for key in MODALITIES:
                if item['inputs'][key].shape != inputs[key].shape:
                    problems.append(f'samples 0 and {index} differ in {key}: '
                                    f'{short(inputs[key])} vs {short(item["inputs"][key])}')
    batch = pseudo_collate(items)
    annotated = synthetic.labels.get(loader['dataset'].get('split'))
    problems += label_findings(batch['data_samples'], annotated, ctx.recipe.num_classes)
    return batch, problems, seen


def model_pass(ctx: GuardContext, split: str, data: dict[str, Any]) -> list[Finding]:
    """Feed a matching batch to the model in the split's mode, without gradients."""
    model: Any = ctx.model  # a BaseRecognizer: parse_losses, data_preprocessor
    mode = MODES[split]
    model.train(mode == 'loss')
    where = f'{split} batch {short(data["inputs"]["imgs"])}'
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
    """Per-clip shapes ``(C, T, H, W)`` of both modalities."""
    return tuple(tuple(data['inputs'][key].shape[2:]) for key in MODALITIES)


def describe_sizes(ready: dict[str, dict[str, Any]]) -> str:
    """``clips imgs 3x16x224x224, heatmap_imgs 17x48x56x56; train N=2 V=1, ...``."""
    def dims(size: tuple[int, ...]) -> str:
        return 'x'.join(str(v) for v in size)

    clips = {clip_shapes(data) for data in ready.values()}
    batches = ', '.join(f'{split} N={data["inputs"]["imgs"].shape[0]} '
                        f'V={data["inputs"]["imgs"].shape[1]}' for split, data in ready.items())
    if len(clips) != 1:
        return batches
    imgs, heat = clips.pop()
    return f'clips imgs {dims(imgs)}, heatmap_imgs {dims(heat)}; {batches}'


def redundant(ready: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Predict batches whose clip shapes a cheaper predict batch already covers.

    Returns:
        dict: split -> the split whose batch (fewest clips, N x V) stands in for it.
    """
    def clips(split: str) -> int:
        return math.prod(ready[split]['inputs']['imgs'].shape[:2])

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
                                          num_val=SAMPLES['val'], seed=ctx.settings.seed)
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
                    problems += batch_findings(batch, data)
                    seen['batch'] = {key: short(value) for key, value in data['inputs'].items()}
                    if not problems:
                        ready[split] = data
            findings += [Finding(Rule.INPUTS,
                f'{split} pipeline: {problem}') for problem in problems]
            seen['seconds'] = round(time.perf_counter() - start, 2)
            details['splits'][split] = seen
        sizes = describe_sizes(ready)
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
