"""A fork-shaped RGB + pose plugin for a 28-keypoint dataset (a test fixture).

52 fine / 7 coarse classes, 8 RGB / 32 pose frames hard-coded in the
backbone, the pose stream's input channels declared as
``backbone.pose_pathway.in_channels``, and its own ``AccMetric`` (registered
over MMAction2's) that fuses the RGB and pose scores although predictions
carry 4 score keys. Everything else follows the contract. Planted defects,
switched on from the config:

- ``model.leak_labels=True``: the recognizer passes the labels to the
  backbone in every mode, ``predict`` and ``tensor`` included (CONTRACT §2);
- ``model.cls_head.defects=[...]`` from :data:`epam_fork28.head.DEFECTS`:
  ``cuda_state_space`` (the tree loss's ``__init__`` calls ``.cuda()``),
  ``cuda_in_loss`` (the head's ``loss`` calls ``.cuda()``),
  ``recreated_parameter`` (a parameter made anew in every training forward);
  all CONTRACT §6.
"""
from .backbone import Fork28Backbone
from .head import Fork28Head
from .metric import ForkAccMetric
from .recognizer import Fork28Recognizer

__all__ = ['Fork28Backbone', 'Fork28Head', 'Fork28Recognizer', 'ForkAccMetric']
