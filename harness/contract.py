"""The interface contract, as data: its rules and what each rule expects.

The one place the guard's idea of the contract lives (``docs/CONTRACT.md`` is
the same contract for people). Checks read names, shapes, keys and
signatures from here rather than spelling them out themselves; a test
compares this module with the document and the README table.
"""
from __future__ import annotations

import enum
import re

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

    @property
    def short_title(self) -> str:
        return TITLES[self]

    @property
    def anchor(self) -> str:
        """The heading's anchor in :data:`DOCUMENT` (GitHub's slug rules)."""
        heading = f'{self.value}. {HEADINGS[self]}'
        return re.sub(r'[^\w\- ]', '', heading.lower()).replace(' ', '-')

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
}

#: The section headings of :data:`DOCUMENT`, after their number.
HEADINGS = {
    Rule.INPUTS: 'Inputs',
    Rule.ROUTING: 'The recognizer routes labels to the backbone only',
    Rule.BACKBONE: 'The backbone returns a 6-tuple',
    Rule.HEAD: 'The head',
    Rule.LABELS: 'Label semantics',
    Rule.STATE: 'State and devices',
}


def rule(value: Rule | str) -> Rule:
    """``Rule.BACKBONE`` from itself or from ``'3'``."""
    return value if isinstance(value, Rule) else Rule(str(value))


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
