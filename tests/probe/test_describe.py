"""``epam_guard.probe.describe``: structure for snapshots, one-line forms, copies as passed."""
from __future__ import annotations

import torch

from epam_guard.probe.describe import (
    MAX_ITEMS,
    SampleView,
    as_passed,
    describe,
    dtype_name,
    is_data_sample,
    sample_view,
    samples_line,
    short,
    values,
)


def sample(label: int):
    from mmaction.structures import ActionDataSample

    return ActionDataSample().set_gt_label(label)


def test_describe_gives_structure_never_raw_values():
    value = {'feats': (torch.zeros(2, 3), None), 'k': 3, 'f': 0.1234567891, 'name': 'x'}
    assert describe(value) == {'feats': [{'shape': [2, 3], 'dtype': 'float32'}, None],
                               'k': 3, 'f': 0.123457, 'name': 'x'}
    long = describe(list(range(MAX_ITEMS + 3)))
    assert long[-1] == '... 3 more' and len(long) == MAX_ITEMS + 1
    assert describe(object()) == 'object'
    assert describe([[[[[[1]]]]]]) == [[[[['list']]]]]  # bounded depth


def test_describe_lists_data_sample_fields():
    assert describe(sample(3)) == 'ActionDataSample(gt_label)'
    assert describe([sample(3), sample(4)]) == '2 x ActionDataSample(gt_label)'
    assert describe(sample_view(sample(3))) == 'ActionDataSample(gt_label)'


def test_short_is_one_line_of_structure():
    assert short(torch.zeros(2, 432, dtype=torch.float16)) == '(2, 432) float16'
    assert short((torch.zeros(1), None)) == 'tuple[2]((1,) float32, None)'
    assert short({'a': torch.zeros(())}) == '{a: () float32}'
    assert short(3) == '3'
    assert short(list(range(MAX_ITEMS + 1))).startswith('[0, 1')


def test_short_shows_labels_of_data_samples_per_sample():
    assert short([sample(3), sample(7)]) == '2 x ActionDataSample(gt_label) gt_label: 3, 7'


def test_values_show_small_integer_tensors_with_dtype_and_device():
    assert values(torch.tensor([3, 7])) == '[3, 7] (int64, cpu)'
    assert values(torch.arange(10), limit=3) == '[0, 1, 2, ... 7 more] (int64, cpu)'
    assert values(None) == 'None'
    on_meta = torch.zeros(2, dtype=torch.long, device='meta')
    assert values(on_meta) == '(2,) int64 (meta, no values)'
    assert values([1, 2]) == 'list'


def test_as_passed_is_not_changed_by_later_mutation():
    labels = torch.tensor([1, 2])
    feats = torch.zeros(2, 3)
    inputs = {'imgs': feats, 'labels': labels, 'nested': [labels]}
    copy = as_passed(inputs)
    inputs['imgs'] = feats.flatten()  # MMAction2 rewrites the caller's dict in place
    labels.add_(10)
    assert copy['imgs'].shape == (2, 3)
    assert copy['labels'].tolist() == [1, 2] and copy['nested'][0].tolist() == [1, 2]
    assert copy['imgs'] is feats  # float tensors are shared, not copied


def test_as_passed_freezes_data_samples():
    passed = sample(5)
    view = as_passed([passed])[0]
    passed.set_field(torch.zeros(3), 'pred_score')
    assert view == SampleView('ActionDataSample', ('gt_label',), (('gt_label', (5,)),))
    assert str(view) == 'ActionDataSample(gt_label=5)'
    assert str(sample_view(passed)) == 'ActionDataSample(gt_label=5, pred_score)'


def test_old_label_api_is_read_through_label_data():
    from mmaction.structures import ActionDataSample
    from mmengine.structures import LabelData

    old = ActionDataSample()
    old.gt_labels = LabelData(item=torch.tensor([4]))
    view = sample_view(old)
    assert view.labels == (('gt_labels.item', (4,)),)
    assert str(view) == 'ActionDataSample(gt_labels.item=4)'
    assert samples_line([old, old]) == '2 x ActionDataSample(gt_labels) gt_labels.item: 4, 4'


def test_labels_on_the_meta_device_are_named_without_values():
    on_meta = sample(3)
    on_meta.gt_label = on_meta.gt_label.to('meta')
    assert sample_view(on_meta) == SampleView('ActionDataSample', ('gt_label',))


def test_data_samples_are_recognised_by_their_interface():
    assert is_data_sample(sample(1))
    assert not is_data_sample({'gt_label': 1}) and not is_data_sample(type(sample(1)))


def test_dtype_name():
    assert dtype_name(torch.int64) == 'int64'
