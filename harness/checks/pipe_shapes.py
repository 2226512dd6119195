"""Check ``pipe_shapes``: each pipeline's shapes, from its parameters, fit the model.

CONTRACT §1, in the fast tier. The shapes each of the config's train, val and
test pipelines would pack per sample are derived from the transforms'
parameters (:mod:`epam_guard.model.pipeline_shapes`: no video is decoded, no
transform runs). The multimodal layout (RGB clips and heat maps) is judged by
the very rules, in the very words, of the ``pipeline`` check
(:func:`~epam_guard.checks.pipeline.sample_findings`): modalities, channels,
pose frames per RGB frame, the two streams' spatial sizes, views per sample.
A one-tensor kind (``Recognizer2D`` segments, ``Recognizer3D`` clips or heat
maps, ``RecognizerGCN`` skeletons) is judged by what its model fixes
(:func:`~epam_guard.model.pipeline_shapes.kind_findings`): the layout, the channels,
the joints, a head's ``num_segments``. A val or test pipeline whose ``GeneratePoseTarget``
lost its ``scaling``, or whose sampler's ``clip_len`` differs from training,
fails here in milliseconds.

Where the shape pass stops (a fork's own transform, a size that depends on the
video), the verdict says so and leaves that pipeline to ``pipeline``, which
runs the real transforms on synthetic data in the launch tier.
"""
from __future__ import annotations

from typing import Any

import torch

from ..contract.profiles import Rule
from ..model.context import GuardContext
from ..model.pipeline_shapes import SPLITS, derive_config, kind_findings
from ..probe.describe import short
from ..report.result import CheckResult, Finding, Status
from .common import finish
from .pipeline import expectations, sample_findings


def _placeholders(inputs: dict[str, tuple[int, ...]] | tuple[int, ...]) -> Any:
    """Shape-only tensors (``meta`` device) standing for the packed inputs."""
    if isinstance(inputs, dict):
        return {key: torch.empty(shape, device='meta') for key, shape in inputs.items()}
    return torch.empty(inputs, device='meta')


def _dims(shape: tuple[int, ...]) -> str:
    return 'x'.join(str(v) for v in shape)


def check(ctx: GuardContext) -> CheckResult:
    """The shapes each pipeline's parameters give are what the model takes: by the ``pipeline``
    check's rules for the multimodal kind, by
    :func:`~epam_guard.model.pipeline_shapes.kind_findings`
    for a one-tensor kind (``Recognizer2D``, ``Recognizer3D``, ``RecognizerGCN``)."""
    packed = ctx.recipe.input_kind.packed
    expect = expectations(ctx) if packed else {'kind': ctx.recipe.kind,
                                               'sample': ctx.recipe.shapes(1)}
    findings: list[Finding] = []
    splits: dict[str, dict[str, Any]] = {}
    derived = derive_config(ctx.cfg)
    judged, left = [], []
    for split in SPLITS:
        if split not in derived:
            splits[split] = {'skipped': f'no {split} pipeline in the config'}
            continue
        found = derived[split]
        problems = list(found.problems)
        seen: dict[str, Any] = {}
        if found.inputs is not None:
            inputs = _placeholders(found.inputs)
            problems += (sample_findings(inputs, found.pipeline, expect) if packed
                         else kind_findings(found.inputs, ctx.recipe, ctx.cfg))
            seen['sample'] = ({key: short(value) for key, value in inputs.items()}
                              if isinstance(inputs, dict) else short(inputs))
            judged.append(split)
        if found.stopped is not None:
            seen['left_to_pipeline'] = found.stopped
            left.append(f'{split} ({found.stopped})')
        findings += [Finding(Rule.INPUTS, f'{split} pipeline: {problem}') for problem in problems]
        splits[split] = seen
    details = {'expected': expect, 'splits': splits}
    leftover = f'; left to the pipeline check: {"; ".join(left)}' if left else ''
    if not judged and not findings:
        why = (f'no pipeline could be followed by the shape pass{leftover}' if derived else
               'the config has no train, val or test pipeline to derive shapes from')
        return CheckResult('pipe_shapes', Status.SKIP, why, details=details)
    return finish('pipe_shapes', findings,
                  f'{", ".join(judged)} pipelines make what the model takes, from their '
                  f'parameters ({_sizes(derived, judged)}){leftover}', details)


def _sizes(derived: dict[str, Any], judged: list[str]) -> str:
    """``imgs 3x16x224x224, heatmap_imgs 17x48x56x56 per view; views train 1, test 5``."""
    clips = {tuple((key, shape[1:]) for key, shape in derived[split].inputs.items())
             for split in judged if isinstance(derived[split].inputs, dict)}
    views = ', '.join(f'{split} {_views(derived[split].inputs)}' for split in judged)
    if not clips:  # one tensor per sample: its shape per split
        return '; '.join(f'{split} {_dims(derived[split].inputs)}' for split in judged)
    if len(clips) != 1:
        return f'views {views}'
    per_view = ', '.join(f'{key} {_dims(shape)}' for key, shape in clips.pop())
    return f'{per_view} per view; views {views}'


def _views(inputs: Any) -> int:
    shape = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
    return int(shape[0])
