"""A fork-shaped EPAM plugin written against the MMAction2 1.1 API (a test fixture).

It registers its OWN classes under the reference names ``EPAMBackbone`` and
``EPAMRecognizer`` (as a researcher's fork does), plus ``EPAMForkHead``. It
reads labels from ``gt_labels.item``, hard-codes its clip lengths (16 RGB /
48 pose frames), names its hierarchy losses ``hierarchy_*`` and is tiny (a
few thousand parameters). Planted defects are switched on from the config:
``model.defect`` (recognizer) and ``model.cls_head.defect`` (head); see
:data:`epam_fork.head.DEFECTS` and :data:`epam_fork.recognizer.DEFECTS`.
"""
from .backbone import ForkBackbone
from .head import EPAMForkHead
from .recognizer import ForkRecognizer

__all__ = ['EPAMForkHead', 'ForkBackbone', 'ForkRecognizer']
