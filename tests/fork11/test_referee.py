"""The guard's own fine->coarse mapping: where it comes from, what it refuses."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.config import Config

from epam_guard.contract.errors import ConfigError
from epam_guard.contract.referee import NTU60_GROUPS, build_hierarchy

REFERENCE_TABLE = Path(__file__).resolve().parents[2] / 'epam' / 'hierarchy.py'
SIX = [0, 0, 1, 1, 1, 2]


def config(classes: int = 60, model: dict[str, Any] | None = None, coarse: int | None = 8,
           **top: Any) -> Config:
    """A model config whose head predicts ``classes`` fine and ``coarse`` coarse classes
    (None: a head with no coarse classes, as MMAction2's own heads)."""
    head = dict(cls_head=dict(num_classes=classes, num_coarse_classes=coarse))
    return Config(dict(model={**head, **(model or {})}, **top))


def test_ntu60_table_is_the_reference_plugins():
    # Loaded by path: the guard never imports epam, and neither does this test.
    spec = importlib.util.spec_from_file_location('reference_hierarchy', REFERENCE_TABLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(map(tuple, module.NTU60_HIERARCHY['groups'])) == NTU60_GROUPS
    reference = module.LabelHierarchy.build(None)
    ours = build_hierarchy(config())
    fine = torch.arange(60)
    assert torch.equal(ours(fine), reference(fine))
    assert ours.num_coarse_classes == reference.num_coarse_classes == 8
    assert ours.source.startswith('NTU-60 default')


def test_sources_in_order_option_guard_key_model_default(tmp_path):
    guard = [0] * 30 + [1] * 30
    model = dict(num_classes=60, groups=[[0, 9], [10, 59]])
    cfg = config(epam_guard=dict(hierarchy=guard), model=dict(hierarchy=model))
    option = json.dumps([0] * 20 + [1] * 20 + [2] * 20)
    assert build_hierarchy(cfg, option).num_coarse_classes == 3
    assert build_hierarchy(cfg, option).source == '--hierarchy (inline)'
    assert build_hierarchy(cfg).source == 'config epam_guard.hierarchy'
    assert build_hierarchy(cfg).coarse_of_fine == tuple(guard)
    only_model = config(model=dict(hierarchy=model))
    assert build_hierarchy(only_model).source == 'config model.hierarchy'
    assert build_hierarchy(only_model)(torch.tensor([9, 10, 59])).tolist() == [0, 1, 1]


def test_hierarchy_from_json_and_python_files(tmp_path):
    cfg = config(classes=6)
    as_json = tmp_path / 'six.json'
    as_json.write_text(json.dumps(SIX))
    as_python = tmp_path / 'six.py'
    as_python.write_text(f'coarse_of_fine = {SIX}\n')
    for path in (as_json, as_python):
        hierarchy = build_hierarchy(cfg, str(path))
        assert hierarchy.coarse_of_fine == tuple(SIX)
        assert hierarchy.source == f'--hierarchy {path}'
    labels = torch.tensor([5, 0, 3], dtype=torch.long)
    coarse = build_hierarchy(cfg, str(as_json))(labels)
    assert coarse.dtype == torch.long and coarse.tolist() == [2, 0, 1]


@pytest.mark.parametrize('spec, message', [
    ([0, 0, 1, 1, 3, 3], r'coarse classes must be 0..K-1 with none skipped.*missing \[2\]'),
    ([0, 0, 1, 1, 1], 'maps 5 fine labels but the head has 6'),
    ([0, 0, 1, 1, 1, 1.5], 'must hold ints'),
    ({'num_classes': 6, 'groups': [[0, 2], [2, 5]]}, 'fine label 2 is in group 0 and in group 1'),
    ({'num_classes': 6, 'groups': [[0, 2], [4, 5]]}, r'1 fine labels are in no group: \[3\]'),
    ({'num_classes': 8, 'groups': [[0, 7]]}, 'num_classes is 8 but the head has 6'),
    ('0,0,1', 'neither inline JSON nor an existing file'),
    ('[0, 0,', 'inline JSON cannot be parsed'),
])
def test_a_bad_hierarchy_is_one_line_naming_its_source(spec, message):
    option = spec if isinstance(spec, str) else json.dumps(spec)
    with pytest.raises(ConfigError, match=message) as error:
        build_hierarchy(config(classes=6), option)
    assert '\n' not in str(error.value)
    assert str(error.value).startswith('--hierarchy')


def test_no_hierarchy_for_a_head_that_is_not_ntu60_is_refused():
    with pytest.raises(ConfigError, match='NTU-60 default does not apply; pass --hierarchy'):
        build_hierarchy(config(classes=6))


@pytest.mark.parametrize('classes', [60, 400])
def test_a_head_without_coarse_classes_given_no_hierarchy_has_none(classes: int):
    """TSN's 400 Kinetics classes (and PoseC3D's 60) need no grouping: no NTU-60 default."""
    assert build_hierarchy(config(classes=classes, coarse=None)) is None
    given = build_hierarchy(config(classes=6, coarse=None), json.dumps(SIX))
    assert given is not None and given.num_coarse_classes == 3  # asked for: built


def test_labels_outside_the_mapping_are_refused():
    hierarchy = build_hierarchy(config(classes=6), json.dumps(SIX))
    with pytest.raises(ValueError, match=r'must lie in \[0, 6\)'):
        hierarchy(torch.tensor([6]))
