"""The interface contract, as data: its rules, its profiles and what each rule expects.

The one place the guard's idea of the contract lives (``docs/CONTRACT.md`` is
the same contract for people). Checks read names, shapes, keys and
signatures from here rather than spelling them out themselves; a test
compares this module with the document and the README table.

The rules come in two profiles (:data:`PROFILES`): ``mmaction2``, what every
MMAction2 recognizer keeps, and ``epam``, which adds EPAM-Net's own (the
backbone's 6-tuple, labels to the backbone in loss mode, fine and coarse
scores and losses, a hierarchy). :func:`choose_profile` picks one for a
config and its model. Nothing here imports torch.
"""
from __future__ import annotations

import enum
import inspect
import re
from dataclasses import dataclass
from typing import Any

#: Where the rules are written for people (relative to the repository root).
DOCUMENT = 'docs/CONTRACT.md'


class Rule(str, enum.Enum):
    """A section of the contract. The value is the section number (``'3'``)."""

    INPUTS = '1'
    ROUTING = '2'
    BACKBONE = '3'
    HEAD = '4'
    LABELS = '5'
    STATE = '6'
    BLIND = '7'

    @property
    def short_title(self) -> str:
        return TITLES[self]

    @property
    def anchor(self) -> str:
        """The heading's anchor in :data:`DOCUMENT` (GitHub's slug rules)."""
        heading = f'{self.value}. {HEADINGS[self]}'
        return re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')

    @property
    def profiles(self) -> tuple[str, ...]:
        """The names of the profiles that have this rule (:data:`PROFILES`)."""
        return tuple(name for name, profile in PROFILES.items() if self in profile.rules)

    def __str__(self) -> str:
        return f'CONTRACT §{self.value} {self.short_title}'


#: Short names used in findings: ``[CONTRACT §3 backbone 6-tuple] ...``.
TITLES = {
    Rule.INPUTS: 'inputs',
    Rule.ROUTING: 'recognizer routing',
    Rule.BACKBONE: 'backbone 6-tuple',
    Rule.HEAD: 'head',
    Rule.LABELS: 'label semantics',
    Rule.STATE: 'state and devices',
    Rule.BLIND: 'label-blind predictions',
}

#: The section headings of :data:`DOCUMENT`, after their number.
HEADINGS = {
    Rule.INPUTS: 'Inputs',
    Rule.ROUTING: 'The recognizer routes the labels',
    Rule.BACKBONE: 'The backbone returns a 6-tuple',
    Rule.HEAD: 'The head',
    Rule.LABELS: 'Label semantics',
    Rule.STATE: 'State and devices',
    Rule.BLIND: 'Predictions are label-blind',
}


def rule(value: Rule | str) -> Rule:
    """``Rule.BACKBONE`` from itself or from ``'3'``."""
    return value if isinstance(value, Rule) else Rule(str(value))


# ------------------------------------------------------------------ profiles
@dataclass(frozen=True)
class Profile:
    """One set of rules a recognizer is judged by, and how strictly.

    Attributes:
        name: what ``epam_guard = dict(contract=...)`` names.
        rules: the rules it has; a check whose rules are all outside it is not run.
        labels_to_backbone: the backbone receives the labels (and their coarse groups) in
            loss mode; otherwise no label reaches the backbone or neck in any mode.
        hierarchy: a fine-to-coarse hierarchy is part of the model, so a loss target may be
            hierarchy(labels) and a loss must receive it.
        inputs_rewrite_fails: rewriting the caller's inputs dict is a failure (otherwise a
            warning: MMAction2's own ``MMRecognizer3D`` does it and trains fine).
    """

    name: str
    rules: tuple[Rule, ...]
    labels_to_backbone: bool
    hierarchy: bool
    inputs_rewrite_fails: bool
    summary: str

    def has(self, rule: Rule) -> bool:
        return rule in self.rules


MMACTION2 = Profile(
    'mmaction2', (Rule.INPUTS, Rule.ROUTING, Rule.HEAD, Rule.LABELS, Rule.STATE, Rule.BLIND),
    labels_to_backbone=False, hierarchy=False, inputs_rewrite_fails=False,
    summary='what every MMAction2 recognizer keeps')
EPAM = Profile(
    'epam', tuple(Rule), labels_to_backbone=True, hierarchy=True, inputs_rewrite_fails=True,
    summary="EPAM-Net's: the generic rules, the backbone's 6-tuple, labels to the backbone in "
            'loss mode, fine and coarse scores and losses, a hierarchy')
#: The profiles by name, the generic one first.
PROFILES = {profile.name: profile for profile in (MMACTION2, EPAM)}
#: The arguments of a backbone's ``forward`` that make a model EPAM's (the labels it takes).
EPAM_BACKBONE_LABELS = ('gt', 'gt_coarse')


def _backbone_labels(model: Any) -> list[str]:
    """The EPAM label arguments ``model.backbone.forward`` takes (empty when none)."""
    forward = getattr(getattr(model, 'backbone', None), 'forward', None)
    try:
        parameters = inspect.signature(forward).parameters if forward is not None else {}
    except (TypeError, ValueError):  # a builtin or C-level forward: no names to read
        return []
    return [name for name in EPAM_BACKBONE_LABELS if name in parameters]


def _hierarchical(options: dict[str, Any], model_cfg: Any, hierarchy: str | None) -> str | None:
    """Where the config (or ``--hierarchy``) gives the model a label hierarchy, or None."""
    head = (model_cfg or {}).get('cls_head') or {}
    for where, given in (('--hierarchy', hierarchy),
                         ('epam_guard.hierarchy', options.get('hierarchy')),
                         ('model.hierarchy', (model_cfg or {}).get('hierarchy')),
                         (f'{HEAD_CONFIG}.num_coarse_classes', head.get('num_coarse_classes'))):
        if given is not None:
            return f'{where} gives a label hierarchy'
    return None


def choose_profile(options: dict[str, Any], model: Any, model_cfg: Any = None,
                   hierarchy: str | None = None) -> tuple[Profile, str]:
    """The profile to judge ``model`` by, and why.

    The config's ``epam_guard = dict(contract=...)`` (``options``) wins; else the
    model is EPAM's when its backbone's ``forward`` takes ``gt``/``gt_coarse``,
    or when the config (``model_cfg``: ``model.hierarchy``, the head's
    ``num_coarse_classes``, ``epam_guard.hierarchy``) or ``--hierarchy``
    (``hierarchy``) gives it a label hierarchy, which only the EPAM profile
    judges by; else the generic profile. Raises ``ValueError`` for a name no
    profile has (the caller turns it into a one-line diagnosis).
    """
    named = options.get('contract')
    if named is not None:
        if named not in PROFILES:
            raise ValueError(f'epam_guard.contract must be one of {", ".join(PROFILES)}, but '
                             f'got {named!r}')
        return PROFILES[named], 'epam_guard.contract in the config'
    taken = _backbone_labels(model)
    if taken:
        kind = type(model.backbone).__name__
        return EPAM, f'{kind}.forward takes {", ".join(taken)}'
    given = _hierarchical(options, model_cfg, hierarchy)
    if given:
        return EPAM, given
    return MMACTION2, "the backbone's forward takes no labels and no label hierarchy is given"


# ------------------------------------------------------------------ §1 inputs
#: Input modalities and their channel counts (heat-map channels come from the pipeline).
INPUT_KEYS = ('imgs', 'heatmap_imgs')
RGB_CHANNELS = 3
#: Pose clips have this many frames per RGB frame, heat maps this fraction of the crop.
POSE_FRAMES_PER_RGB_FRAME = 3
HEATMAP_SCALE = 0.25
#: Fine labels are ``[0, num_classes)``; NTU-60 has 60 and 8 coarse groups.
NUM_CLASSES = 60
NUM_COARSE_CLASSES = 8
#: Where a data sample carries its label: MMAction2 1.2, then 1.0/1.1 forks.
LABEL_FIELDS = ('gt_label', 'gt_labels.item')

# ------------------------------------------------------------------ §2 routing
#: The backbone's signature: positions of the labels when passed positionally.
BACKBONE_ARGUMENTS = ('imgs', 'heatmap_imgs', 'gt', 'gt_coarse')
#: What the head's entry points may receive, and nothing else.
HEAD_SIGNATURES = {'loss': ('feats', 'data_samples'), 'predict': ('feats', 'data_samples')}

# ------------------------------------------------------------------ §3 backbone
TUPLE_NAMES = ('x_rgb', 'x_pose', 'x_rgb1', 'x_pose1', 'gt', 'gt_coarse')
FEATURE_NAMES = TUPLE_NAMES[:4]
LABEL_NAMES = TUPLE_NAMES[4:]
#: ``x_rgb1``/``x_pose1`` must be tensors distinct from these.
RENOVATION_OF = {'x_rgb1': 'x_rgb', 'x_pose1': 'x_pose'}
#: Spatial strides of the two streams; temporal length is kept.
RGB_STRIDE = 32
POSE_STRIDE = 8
#: Default feature channels (the head's ``in_channels`` in the config wins).
FEATURE_CHANNELS = (432, 216)

# ------------------------------------------------------------------ §4 head
SCORE_KEYS = ('rgb', 'pose', 'rgb_coarse', 'pose_coarse')
#: Fine score keys (``num_classes`` wide); the others are coarse.
FINE_SCORE_KEYS = ('rgb', 'pose')
#: Where a prediction is stored: MMAction2 1.2, then 1.0/1.1 forks.
PREDICTION_FIELDS = ('pred_score', 'pred_scores')
#: The score keys MMAction2's own AccMetric fuses into the metric below (only when they are
#: the dict's only keys; a fork's AccMetric may fuse more).
PREDICTION_KEYS = ('rgb', 'pose')
METRIC_KEY = 'acc/RGBPose_1:1_top1'
LOSS_WEIGHTS = (1.0, 1.2, 0.5, 0.9)

#: Loss kinds by meaning, each with how many terms the head reports and the
#: patterns a key of that kind matches (any spelling a fork uses). A key is
#: of the first kind whose pattern it matches, so order matters.
LOSS_KINDS: dict[str, tuple[int, tuple[str, ...]]] = {
    'feature_renovation': (4, (r'(^|_)fr(_|$)', r'renovat', r'proto')),
    'hierarchy': (2, (r'(^|_)tree(_|$)', r'hierarch', r'consisten')),
    'coarse': (2, (r'coarse',)),
    'fine': (2, (r'(^|_)cls(_|$)', r'(^|_)ce(_|$)', r'fine')),
}
#: Every loss kind is a cross-entropy, a distance or a consistency penalty.
NON_NEGATIVE_LOSSES = True


def loss_kind(key: str) -> str | None:
    """The kind of a loss key (``'rgb_loss_fr'`` -> ``'feature_renovation'``), or None."""
    if 'loss' not in key:
        return None
    for kind, (_, patterns) in LOSS_KINDS.items():
        if any(re.search(pattern, key) for pattern in patterns):
            return kind
    return None


# ------------------------------------------------------------------ config keys
#: The backbone stream (its entry under ``model.backbone``) that takes each model input.
STREAM_INPUTS = {'rgb_stream': 'imgs', 'pose_stream': 'heatmap_imgs'}
#: The config entry that sets the head's ``in_channels`` (one per stream, in
#: ``FEATURE_CHANNELS`` order), ``num_classes`` and ``num_coarse_classes``.
HEAD_CONFIG = 'model.cls_head'
