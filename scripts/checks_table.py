"""The README's "What it checks" table, made from the check registry.

    python scripts/checks_table.py           # print the table
    python scripts/checks_table.py --write   # replace it in README.md

Each row is one entry of ``epam_guard.checks.CHECKS`` (name, tier, rules,
summary); each rule links to its section of ``docs/CONTRACT.md``.
``tests/unit/test_contract_docs.py`` fails when README.md and the registry
disagree.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from epam_guard.checks import CHECKS
from epam_guard.contract import DOCUMENT, Rule

README = Path(__file__).resolve().parents[1] / 'README.md'
#: The lines that enclose the generated table in README.md.
BEGIN = '<!-- checks-table: generated from the check registry by scripts/checks_table.py -->'
END = '<!-- /checks-table -->'


def rule_link(rule: Rule) -> str:
    """``[§3](docs/CONTRACT.md#3-the-backbone-returns-a-6-tuple)``."""
    return f'[§{rule.value}]({DOCUMENT}#{rule.anchor})'


def table() -> str:
    """The Markdown table, one row per registered check, in registry order."""
    rows = ['| check | tier | rules | what it proves |', '|---|---|---|---|']
    for spec in CHECKS.values():
        rules = ', '.join(rule_link(rule) for rule in spec.rules)
        rows.append(f'| `{spec.name}` | {spec.tier} | {rules} | {spec.summary} |')
    return '\n'.join(rows)


def replace_table(text: str) -> str:
    """``text`` (README.md) with the lines between the markers replaced by :func:`table`."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f'README.md has no {BEGIN} ... {END} block to replace')
    return f'{head}{BEGIN}\n{table()}\n{END}{tail}'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--write', action='store_true', help='replace the table in README.md')
    args = parser.parse_args(argv)
    if args.write:
        README.write_text(replace_table(README.read_text('utf-8')), 'utf-8')
    else:
        print(table())
    return 0


if __name__ == '__main__':
    sys.exit(main())
