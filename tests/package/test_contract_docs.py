"""The contract as documented agrees with the contract as the checks cite it.

``docs/CONTRACT.md`` has one section per rule (headings from
``contract.HEADINGS``); README's "What it checks" table is the check registry
(names, tiers, rules, summaries, as ``scripts/checks_table.py`` prints it);
every rule link in README resolves to a heading; each check is named in the
sections of the rules it proves, and its code cites the rules the registry
gives it. The profiles (``contract.PROFILES``) are the document's profiles
table, and a check runs only in profiles that have its rules.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from epam_guard.checks import CHECKS
from epam_guard.contract.profiles import DOCUMENT, HEADINGS, PROFILES, Rule

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / DOCUMENT).read_text('utf-8')
README = (REPO / 'README.md').read_text('utf-8')


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location('checks_table',
                                                  REPO / 'scripts' / 'checks_table.py')
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r'[^a-z0-9_\- ]', '', heading.strip().lower()).replace(' ', '-')


def sections() -> dict[str, str]:
    """Each level-2 heading of the document with the text under it."""
    parts = re.split(r'(?m)^## (.+)$', DOCS)
    return dict(zip(parts[1::2], parts[2::2]))


def readme_table() -> str:
    script = load_script()
    head, begin, rest = README.partition(script.BEGIN)
    table, end, _ = rest.partition(script.END)
    assert begin and end, 'README.md lost the markers of the generated checks table'
    return table.strip()


def test_the_document_has_one_section_per_rule_in_order() -> None:
    assert list(sections()) == [f'{rule.value}. {HEADINGS[rule]}' for rule in Rule]


def test_rule_anchors_are_the_headings_github_anchors() -> None:
    anchors = {github_slug(heading) for heading in sections()}
    assert {rule.anchor for rule in Rule} == anchors


def test_readme_table_is_the_registry() -> None:
    assert readme_table() == load_script().table(), (
        'README.md and the check registry disagree: run python scripts/checks_table.py --write')


def test_readme_rows_name_each_check_with_its_tier_and_rules() -> None:
    rows = [line.split(' | ') for line in readme_table().splitlines()[2:]]
    found = {row[0].strip('| `'): (row[1], re.findall(r'\[§(\d)\]', row[2])) for row in rows}
    assert found == {name: (spec.tier, [rule.value for rule in spec.rules])
                     for name, spec in CHECKS.items()}


def test_every_contract_link_in_readme_resolves_to_a_heading() -> None:
    anchors = {github_slug(heading) for heading in sections()}
    links = re.findall(rf'\]\({re.escape(DOCUMENT)}(?:#([^)]*))?\)', README)
    assert len([link for link in links if link]) >= sum(len(s.rules) for s in CHECKS.values())
    assert all(link in anchors for link in links if link), sorted(set(links) - anchors)


@pytest.mark.parametrize('name', list(CHECKS))
def test_each_check_is_named_in_the_sections_of_its_rules(name: str) -> None:
    text = sections()
    for rule in CHECKS[name].rules:
        assert f'`{name}`' in text[f'{rule.value}. {HEADINGS[rule]}'], (name, rule)


def cited_rules(name: str) -> set[Rule]:
    """The rules the check's own module cites in its findings."""
    source = (REPO / 'harness' / 'checks' / f'{name}.py').read_text('utf-8')
    return {Rule[member] for member in re.findall(r'\bRule\.([A-Z]+)\b', source)}


@pytest.mark.parametrize('name', list(CHECKS))
def test_the_registry_claims_only_rules_the_check_cites(name: str) -> None:
    assert set(CHECKS[name].rules) <= cited_rules(name)


#: Checks whose findings cite a rule their registry entry does not list yet.
UNLISTED: dict[str, str] = {}


@pytest.mark.parametrize('name', [
    pytest.param(name, marks=pytest.mark.xfail(reason=UNLISTED[name], strict=True))
    if name in UNLISTED else name for name in CHECKS])
def test_the_registry_lists_every_rule_the_check_cites(name: str) -> None:
    assert cited_rules(name) <= set(CHECKS[name].rules)


def profiles_table() -> dict[str, list[str]]:
    """The document's profiles table: each profile with the rule numbers it lists."""
    rows = re.findall(r'(?m)^\| `(\w+)` \| ([^|]+) \|', DOCS.split('## 1.')[0])
    table = {}
    for name, cell in rows:
        if ' to ' in cell:
            first, last = re.findall(r'§(\d)', cell)
            table[name] = [str(n) for n in range(int(first), int(last) + 1)]
        else:
            table[name] = re.findall(r'§(\d)', cell)
    return table


def test_the_documents_profiles_table_is_the_profiles() -> None:
    assert profiles_table() == {name: [rule.value for rule in profile.rules]
                                for name, profile in PROFILES.items()}


@pytest.mark.parametrize('name', list(CHECKS))
def test_a_check_runs_only_in_profiles_that_have_its_rules(name: str) -> None:
    spec = CHECKS[name]
    assert spec.profiles and set(spec.profiles) <= set(PROFILES)
    for profile in spec.profiles:
        assert any(PROFILES[profile].has(rule) for rule in spec.rules), (name, profile)
    for profile in set(PROFILES) - set(spec.profiles):
        assert spec.not_run(PROFILES[profile]).startswith('not run: ')


def test_readme_rules_table_gives_each_rules_profiles() -> None:
    script = load_script()
    table = README.partition(script.RULES_BEGIN)[2].partition(script.RULES_END)[0]
    rows = [line.split(' | ') for line in table.strip().splitlines()[2:]]
    found = {re.findall(r'§(\d)', row[0])[0]: re.findall(r'`(\w+)`', row[1]) for row in rows}
    assert found == {rule.value: list(rule.profiles) for rule in Rule}
    assert found['3'] == ['epam']  # the 6-tuple is EPAM's alone
