"""EPAM-Net as an MMAction2 plugin (``custom_imports=dict(imports=['epam'])``).

Importing this package registers into ``mmaction.registry.MODELS``:

==========================  ============================================
``XShiftNet``               RGB stream (X3D + temporal shift)
``PoseXShiftNet``           pose heat-map stream
``EPAMBackbone``            both streams + pose-driven attention
``EPAMHierarchicalHead``    fine/coarse head with FR and tree losses
``FeatureRenovationLoss``   prototype loss
``HierarchyTreeLoss``       hierarchy-consistency loss
``EPAMRecognizer``          the recognizer
==========================  ============================================
"""
from . import compat

# Must run before anything imports mmaction.models (the 1.2.0 wheel lacks DRN).
compat.ensure_mmaction_models_importable()

# MMAction2's own models register first, so a clash with one of their names is
# an error at import time rather than a silent override.
import mmaction.models  # noqa: E402, F401

from .attention import PoseDrivenAttention, build_pose_attention  # noqa: E402
from .backbone import EPAMBackbone  # noqa: E402
from .head import EPAMHierarchicalHead  # noqa: E402
from .hierarchy import (  # noqa: E402
    NTU60_HIERARCHY,
    LabelHierarchy,
    LabelRangeError,
    labels_from_samples,
)
from .losses import FeatureRenovationLoss, HierarchyTreeLoss  # noqa: E402
from .recognizer import EPAMRecognizer  # noqa: E402
from .streams import PoseXShiftNet, ShiftBlockX3D, XShiftNet  # noqa: E402

__all__ = [
    'EPAMBackbone', 'EPAMHierarchicalHead', 'EPAMRecognizer', 'FeatureRenovationLoss',
    'HierarchyTreeLoss', 'LabelHierarchy', 'LabelRangeError', 'NTU60_HIERARCHY',
    'PoseDrivenAttention', 'PoseXShiftNet', 'ShiftBlockX3D', 'XShiftNet',
    'build_pose_attention', 'labels_from_samples'
]
