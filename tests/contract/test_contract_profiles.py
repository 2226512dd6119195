"""Which contract profile a model is judged by, and why (``contract.choose_profile``)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from epam_guard.contract.profiles import EPAM, MMACTION2, PROFILES, Rule, choose_profile


class LabelTakingBackbone:
    def forward(self, imgs, heatmap_imgs, gt=None, gt_coarse=None):
        return imgs


class PlainBackbone:
    def forward(self, imgs):
        return imgs


def model(backbone: object) -> SimpleNamespace:
    return SimpleNamespace(backbone=backbone)


def test_a_backbone_that_takes_the_labels_is_epams() -> None:
    profile, why = choose_profile({}, model(LabelTakingBackbone()), {})
    assert profile is EPAM
    assert why == 'LabelTakingBackbone.forward takes gt, gt_coarse'


def test_any_other_recognizer_is_judged_by_the_generic_profile() -> None:
    profile, why = choose_profile({}, model(PlainBackbone()), {'cls_head': {'num_classes': 400}})
    assert profile is MMACTION2
    assert why == "the backbone's forward takes no labels and no label hierarchy is given"


@pytest.mark.parametrize('options, model_cfg, option, where', [
    ({}, {'hierarchy': [0, 0, 1]}, None, 'model.hierarchy'),
    ({}, {'cls_head': {'num_coarse_classes': 8}}, None, 'model.cls_head.num_coarse_classes'),
    ({'hierarchy': [0, 1]}, {}, None, 'epam_guard.hierarchy'),
    ({}, {}, '[0, 0, 1]', '--hierarchy'),
])
def test_a_label_hierarchy_makes_a_model_epams(options, model_cfg, option, where) -> None:
    """EPAM's seed defect has a backbone that takes no labels; its hierarchy still says."""
    profile, why = choose_profile(options, model(PlainBackbone()), model_cfg, option)
    assert (profile, why) == (EPAM, f'{where} gives a label hierarchy')


def test_the_config_names_the_profile_and_wins() -> None:
    profile, why = choose_profile({'contract': 'mmaction2'}, model(LabelTakingBackbone()),
                                  {'hierarchy': [0]})
    assert (profile, why) == (MMACTION2, 'epam_guard.contract in the config')
    assert choose_profile({'contract': 'epam'}, model(PlainBackbone()))[0] is EPAM


def test_an_unknown_profile_name_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"must be one of mmaction2, epam, but got 'mmaction'"):
        choose_profile({'contract': 'mmaction'}, model(PlainBackbone()))


def test_the_generic_profile_is_epams_without_its_own_rules() -> None:
    assert set(MMACTION2.rules) < set(EPAM.rules) == set(Rule)
    assert set(EPAM.rules) - set(MMACTION2.rules) == {Rule.BACKBONE}
    assert Rule.BACKBONE.profiles == ('epam',)
    assert Rule.BLIND.profiles == tuple(PROFILES)
    assert not MMACTION2.labels_to_backbone and not MMACTION2.hierarchy
    assert not MMACTION2.inputs_rewrite_fails and EPAM.inputs_rewrite_fails
