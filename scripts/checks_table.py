"""The README's "What it checks" and "Where each rule is checked" tables, made from the
check registry.

    python scripts/checks_table.py           # print the tables
    python scripts/checks_table.py --write   # replace them in README.md

In the first, each row is one entry of ``epam_guard.checks.CHECKS`` (name,
tier, rules, the contract profiles it runs in, summary); each rule links to its
section of ``docs/CONTRACT.md``.
In the second, each row is one rule: the profiles that have it
(``epam_guard.contract.profiles.PROFILES``), the checks the registry gives it, their
code (``harness/checks/<name>.py``) and the tests that run them on
deliberately broken variants (:data:`FAILING_TESTS`).
``tests/package/test_contract_docs.py`` fails when README.md and the registry
disagree, when a check has no failing-variant test named here, and when a
named file does not run the check to a failure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from epam_guard.checks import CHECKS
from epam_guard.contract.profiles import DOCUMENT, HEADINGS, Rule

README = Path(__file__).resolve().parents[1] / 'README.md'
#: The lines that enclose the generated table in README.md.
BEGIN = '<!-- checks-table: generated from the check registry by scripts/checks_table.py -->'
END = '<!-- /checks-table -->'
RULES_BEGIN = ('<!-- rules-table: generated from the check registry by '
               'scripts/checks_table.py -->')
RULES_END = '<!-- /rules-table -->'
#: Where each check is run on deliberately broken variants and must fail naming its rule.
#: The EPAM recognizer's variants are in test_checks_fail.py; a generic MMAction2 recognizer's
#: (the mmaction2 profile) in test_generic_fail.py.
FAILING_TESTS: dict[str, tuple[str, ...]] = {
    'structure': ('tests/harness/test_checks_fail.py',),
    **{name: ('tests/harness/test_checks_fail.py', 'tests/harness/test_generic_fail.py')
       for name in ('routing', 'labels', 'label_blind', 'train_step', 'eval_purity',
                    'first_pass', 'summary')},
    **{name: ('tests/harness/test_checks_fail.py', 'tests/mmaction/test_pipe_shapes.py')
       for name in ('pipe_shapes',)},
    'pipeline': ('tests/checks_launch/test_pipeline_check.py',
                 'tests/mmaction/test_launch_variants.py'),
    'runner': ('tests/checks_launch/test_runner_check.py',
               'tests/mmaction/test_launch_variants.py'),
    'ddp': ('tests/checks_launch/test_ddp_check.py', 'tests/harness/test_generic_fail.py'),
}


def rule_link(rule: Rule) -> str:
    """``[§3](docs/CONTRACT.md#3-the-backbone-returns-a-6-tuple)``."""
    return f'[§{rule.value}]({DOCUMENT}#{rule.anchor})'


def table() -> str:
    """The Markdown table, one row per registered check, in registry order."""
    rows = ['| check | tier | rules | profiles | what it proves |', '|---|---|---|---|---|']
    for spec in CHECKS.values():
        rules = ', '.join(rule_link(rule) for rule in spec.rules)
        profiles = ', '.join(f'`{name}`' for name in spec.profiles)
        rows.append(f'| `{spec.name}` | {spec.tier} | {rules} | {profiles} | {spec.summary} |')
    return '\n'.join(rows)


def check_code(name: str) -> str:
    """The check's source file, from its registered module."""
    return CHECKS[name].module.replace('epam_guard.', 'harness.').replace('.', '/') + '.py'


def rules_table() -> str:
    """One row per rule: the checks proving it, their code, their failing-variant tests."""
    rows = ['| rule | profiles | checked by | check code | failing-variant tests |',
            '|---|---|---|---|---|']
    for rule in Rule:
        names = [name for name, spec in CHECKS.items() if rule in spec.rules]
        code = ', '.join(f'`{check_code(name)}`' for name in names)
        tests = dict.fromkeys(path for name in names for path in FAILING_TESTS.get(name, ()))
        profiles = ', '.join(f'`{name}`' for name in rule.profiles)
        rows.append(f'| [§{rule.value} {HEADINGS[rule]}]({DOCUMENT}#{rule.anchor}) | '
                    f'{profiles} | {", ".join(f"`{name}`" for name in names)} | {code} | '
                    f'{", ".join(f"`{path}`" for path in tests)} |')
    return '\n'.join(rows)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    head, found_begin, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if not found_begin or not found_end:
        raise SystemExit(f'README.md has no {begin} ... {end} block to replace')
    return f'{head}{begin}\n{body}\n{end}{tail}'


def replace_table(text: str) -> str:
    """``text`` (README.md) with both generated tables replaced (:func:`table`,
    :func:`rules_table`)."""
    return _replace(_replace(text, BEGIN, END, table()), RULES_BEGIN, RULES_END, rules_table())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--write', action='store_true', help='replace the tables in README.md')
    args = parser.parse_args(argv)
    if args.write:
        README.write_text(replace_table(README.read_text('utf-8')), 'utf-8')
    else:
        print(f'{table()}\n\n{rules_table()}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
