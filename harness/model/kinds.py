"""The input kinds MMAction2 recognizers take, as one table, and which one a config means.

Each :class:`InputKind` says what one sample looks like once
``PackActionInputs`` has packed it (its axes, the key the pipeline packs it
under), which streams it carries (RGB frames, heat maps, skeleton key points)
and what the tiny size may shrink. :func:`kind_of` reads the kind from the
config alone, in the order of :data:`SIGNALS` (the pipelines' formatting
transforms first, then the data preprocessor, then the recognizer's type),
and says which entry decided it. Nothing here is an ``if`` per model: a new
kind is a new row.

This module imports neither torch nor MMAction2 at module level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputKind:
    """One layout of a recognizer's inputs.

    Attributes:
        name: the kind's name as the header prints it (``NCHW``, ``NCTHW``,
            ``NCTHW_Heatmap``, ``GCN``, ``multimodal``).
        keys: what ``PackActionInputs`` packs; one key means the inputs are one
            tensor per sample (a list in the collated batch), several mean a
            dict of them (``collect_keys``).
        axes: the letters of one sample's axes per key, views first: ``V``
            views (clips x crops), ``S`` segments (views x frames, 2-D models
            fold them), ``C`` channels, ``T`` frames, ``H``/``W`` space, ``M``
            persons, ``J`` joints.
        streams: the modality of each key (``rgb``, ``pose`` heat maps,
            ``keypoint`` skeletons), in the order of ``keys``.
        shrink_time: whether ``tiny`` may cut the frames (a 2-D model's segment
            count is part of the model: TSM shifts across ``num_segments``).
        recognizers: recognizer types that take this kind when nothing else in
            the config says.
    """

    name: str
    keys: tuple[str, ...]
    axes: tuple[str, ...]
    streams: tuple[str, ...]
    shrink_time: bool = True
    recognizers: tuple[str, ...] = ()

    @property
    def packed(self) -> bool:
        """True when the inputs are a dict of modalities, not one tensor per sample."""
        return len(self.keys) > 1


#: Every kind the recipe can make.
KINDS: dict[str, InputKind] = {kind.name: kind for kind in (
    InputKind('NCHW', ('imgs',), ('SCHW',), ('rgb',), shrink_time=False,
              recognizers=('Recognizer2D',)),
    InputKind('NCTHW', ('imgs',), ('VCTHW',), ('rgb',), recognizers=('Recognizer3D',)),
    InputKind('NCTHW_Heatmap', ('imgs',), ('VCTHW',), ('pose',)),
    InputKind('GCN', ('keypoint',), ('VMTJC',), ('keypoint',), recognizers=('RecognizerGCN',)),
    InputKind('multimodal', ('imgs', 'heatmap_imgs'), ('VCTHW', 'VCTHW'), ('rgb', 'pose'),
              recognizers=('MMRecognizer3D',)),
)}
#: What the guard takes when the config says nothing (the reference EPAM layout).
DEFAULT_KIND = 'multimodal'
#: Samplers that give an RGB and a pose clip length at once (the multimodal layout).
MULTIMODAL_SAMPLERS = ('MMUniformSampleFrames',)
#: Data preprocessors that take a dict of modalities.
MULTIMODAL_PREPROCESSORS = ('MultiModalDataPreprocessor',)
#: Transforms that format skeletons for a graph network.
GCN_FORMATS = ('FormatGCNInput',)


@dataclass(frozen=True)
class Decision:
    """The kind a config means and the entry that said so."""

    kind: InputKind
    source: str
    #: Set when nothing in the config said and the default was taken.
    assumed: str | None = None


def _steps(pipeline: list[dict], kinds: tuple[str, ...]) -> list[dict]:
    return [step for step in pipeline if step.get('type') in kinds]


def _from_pipeline(pipeline: list[dict]) -> tuple[str, str] | None:
    """The kind the train pipeline's own transforms make, and which transform says so."""
    pack = next(iter(_steps(pipeline, ('PackActionInputs',))), {})
    if len(pack.get('collect_keys') or ()) > 1:
        return 'multimodal', 'PackActionInputs.collect_keys'
    if _steps(pipeline, MULTIMODAL_SAMPLERS):
        return 'multimodal', 'MMUniformSampleFrames'
    if _steps(pipeline, GCN_FORMATS):
        return 'GCN', 'FormatGCNInput'
    for step in _steps(pipeline, ('FormatShape',)):
        if step.get('input_format') in KINDS:
            return str(step['input_format']), f'FormatShape(input_format={step["input_format"]!r})'
    return None


def _from_preprocessor(preprocessor: Any) -> tuple[str, str] | None:
    """The kind the config's data preprocessor takes: a multimodal one, else its
    ``format_shape`` as written or as its class defaults it (``ActionDataPreprocessor``:
    ``NCHW``)."""
    if not isinstance(preprocessor, dict):
        return None
    if preprocessor.get('type') in MULTIMODAL_PREPROCESSORS:
        return 'multimodal', f'data_preprocessor {preprocessor["type"]}'
    shape = preprocessor.get('format_shape')
    if shape in KINDS:
        return str(shape), f'data_preprocessor format_shape={shape!r}'
    shape = signature_default(preprocessor.get('type'), 'format_shape')
    if shape in KINDS:
        return str(shape), f'{preprocessor["type"]}\'s default format_shape={shape!r}'
    return None


def _from_recognizer(recognizer: Any) -> tuple[str, str] | None:
    for kind in KINDS.values():
        if recognizer in kind.recognizers:
            return kind.name, f'recognizer {recognizer}'
    return None


def kind_of(cfg: Any, train: list[dict]) -> Decision:
    """The input kind the model of ``cfg`` takes: its data preprocessor's, else what its train
    pipeline (``train``) formats, else its recognizer's type's, else :data:`DEFAULT_KIND`
    (assumed).

    The model's side comes first, so a pipeline formatting for another kind is a
    finding of ``pipe_shapes``, not a new kind; where the pipeline names a kind of
    the same layout more closely (``NCTHW_Heatmap`` for a preprocessor's
    ``NCTHW``), its name is taken.
    """
    model = cfg.model
    by_pipeline = _from_pipeline(train)
    found = (_from_preprocessor(model.get('data_preprocessor')) or by_pipeline
             or _from_recognizer(model.get('type')))
    if found is not None and by_pipeline is not None and found != by_pipeline:
        ours, theirs = KINDS[found[0]], KINDS[by_pipeline[0]]
        if (ours.keys, ours.axes) == (theirs.keys, theirs.axes):
            found = by_pipeline
    if found is not None:
        return Decision(KINDS[found[0]], found[1])
    return Decision(KINDS[DEFAULT_KIND], 'assumed', (
        f'inputs of the {DEFAULT_KIND} kind (imgs + heatmap_imgs): neither the pipelines, the '
        f'data preprocessor nor the recognizer type {model.get("type")!r} says which'))


def signature_default(registry_type: Any, name: str) -> Any:
    """The default of ``name`` in the ``__init__`` of the model or transform registered as
    ``registry_type`` (None when it is not registered or takes no such argument)."""
    import inspect

    from .compat import ensure_mmaction_models_importable

    ensure_mmaction_models_importable()  # the registries import the wheel's models on lookup
    from mmaction.registry import MODELS, TRANSFORMS

    cls = None
    if isinstance(registry_type, str):
        cls = MODELS.get(registry_type) or TRANSFORMS.get(registry_type)
    if cls is None:
        return None
    parameter = inspect.signature(cls.__init__).parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def graph_joints(graph_cfg: Any) -> int | None:
    """Joints of a GCN backbone's skeleton graph (``graph_cfg.layout``), by MMAction2's own
    :class:`~mmaction.models.utils.Graph`; None when the config gives no graph."""
    if not isinstance(graph_cfg, dict) or 'layout' not in graph_cfg:
        return None
    from mmaction.models.utils import Graph

    return int(Graph(**dict(graph_cfg)).num_node)
