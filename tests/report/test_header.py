"""The report's header says exactly what each kind of pass runs at, and what was assumed."""
from __future__ import annotations

from dataclasses import asdict

from epam_guard.model.batch import BatchRecipe, pass_sizes, value_recipe
from epam_guard.report.console import header_line

NTU = BatchRecipe(rgb_frames=16, pose_frames=48, crop=224, heatmap=56, heatmap_channels=17,
                  views=5, batch_size=4, num_classes=60, size='ntu')


def header(recipe: BatchRecipe) -> dict:
    return {'recipe': asdict(recipe), 'passes': pass_sizes(recipe), 'device': 'cpu',
            'hierarchy': 'config model.hierarchy'}


def test_at_ntu_size_shape_and_value_passes_are_told_apart():
    line = header_line(header(NTU))
    assert ('shape passes (structure, on the meta device): RGB 3x16x224x224  pose 17x48x56x56; '
            'value passes and the memory estimate: RGB 3x16x64x64  pose 17x48x16x16') in line
    assert value_recipe(NTU).crop == 64 and value_recipe(NTU).rgb_frames == 16


def test_at_tiny_size_one_size_for_every_pass_and_assumptions_on_their_own_lines():
    tiny = BatchRecipe(rgb_frames=4, pose_frames=12, crop=64, heatmap=16, heatmap_channels=17,
                       views=5, batch_size=4, num_classes=60,
                       assumed=('heat-map channels 17 (17 COCO key points): ...',))
    first, assumed = header_line(header(tiny)).splitlines()
    assert first == ('  N=4 V=5  RGB 3x4x64x64  pose 17x12x16x16  device cpu  hierarchy: '
                     'config model.hierarchy')
    assert assumed == '  assumed: heat-map channels 17 (17 COCO key points): ...'


def test_the_contract_profile_and_why_have_their_own_line():
    given = {**header(NTU), 'contract': 'mmaction2',
             'contract_reason': "the backbone's forward takes no labels"}
    assert "  contract: mmaction2 (the backbone's forward takes no labels)" in \
        header_line(given).splitlines()
