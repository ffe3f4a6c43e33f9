# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare what ``ansible-builder introspect`` found with what the collection declares.

ansible-builder builds an execution environment from the requirements it introspects in the
installed collections. This script reads the YAML that ``ansible-builder introspect PATH`` prints
for a path holding only this collection and checks that its Python requirements are exactly the
entries of requirements.txt and its system requirements exactly those of bindep.txt (comments and
blank lines ignored, order kept), each attributed to this collection.

    python tests/ee/check_introspect.py INTROSPECT_OUTPUT --python requirements.txt \\
        --system bindep.txt --collection storage.vds

Exit status 0 when both match, 1 with a message naming every difference otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
import typing as t

import yaml

# introspect appends "  # from collection NAMESPACE.NAME" to every requirement it reports.
_ATTRIBUTED = re.compile(r'^(?P<entry>.*?)\s+#\s*from collection\s+(?P<collection>\S+)\s*$')
# In both requirements.txt and bindep.txt a comment starts a line, or follows whitespace.
_COMMENT = re.compile(r'(^|\s)#.*$')


def normalize(entry: str) -> str:
    """One requirement as compared: surrounding blanks dropped, inner runs of blanks made one."""
    return ' '.join(entry.split())


def declared_entries(path: str) -> list[str]:
    """The requirement lines of a requirements.txt or bindep.txt file, without comments."""
    entries = []
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            entry = normalize(_COMMENT.sub('', line))
            if entry:
                entries.append(entry)
    return entries


def introspected_entries(
    data: dict[str, t.Any], kind: str, collection: str, problems: list[str]
) -> list[str]:
    """The requirements introspect listed under ``kind`` ("python" or "system")."""
    if kind not in data:
        problems.append(f'the introspect output has no "{kind}" key (keys: {", ".join(sorted(data)) or "none"})')
        return []
    items = data[kind] or []
    if not isinstance(items, list):
        problems.append(f'the introspect output\'s "{kind}" is not a list: {items!r}')
        return []
    entries = []
    for item in items:
        match = _ATTRIBUTED.match(str(item))
        if not match:
            problems.append(f'{kind}: "{item}" does not name the collection it comes from')
            continue
        if match.group('collection') != collection:
            problems.append(
                f'{kind}: "{match.group("entry")}" comes from collection {match.group("collection")}, '
                f'not {collection}: only {collection} should be installed in the introspected path'
            )
            continue
        entries.append(normalize(match.group('entry')))
    return entries


def compare(kind: str, declared_in: str, declared: list[str], found: list[str]) -> list[str]:
    """Every difference between the declared and the introspected entries, as messages."""
    if declared == found:
        return []
    problems = []
    for entry in declared:
        if entry not in found:
            problems.append(
                f'{kind}: {declared_in} declares "{entry}", but ansible-builder introspect does not '
                f'report it: an execution environment would not install it'
            )
    for entry in found:
        if entry not in declared:
            problems.append(
                f'{kind}: ansible-builder introspect reports "{entry}", which {declared_in} does not '
                f'declare: the installed collection carries a requirement the source does not'
            )
    if not problems:
        problems.append(
            f'{kind}: same requirements, but in another order or count: {declared_in} declares '
            f'{declared}, ansible-builder introspect reports {found}'
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the differences and return 1 when there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('introspect_output', help='file holding the output of ansible-builder introspect')
    parser.add_argument('--python', required=True, help='the requirements.txt the collection declares')
    parser.add_argument('--system', required=True, help='the bindep.txt the collection declares')
    parser.add_argument('--collection', required=True, help='NAMESPACE.NAME of the collection')
    args = parser.parse_args(argv)

    with open(args.introspect_output, encoding='utf-8') as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        print(
            f'ERROR: {args.introspect_output} does not hold ansible-builder introspect output '
            f'(a mapping with "python" and "system"): {data!r}',
            file=sys.stderr,
        )
        return 1

    problems: list[str] = []
    for kind, declared_in in (('python', args.python), ('system', args.system)):
        found = introspected_entries(data, kind, args.collection, problems)
        problems.extend(compare(kind, declared_in, declared_entries(declared_in), found))

    if problems:
        print(
            f'ERROR: the requirements ansible-builder finds in the installed collection {args.collection} '
            f'differ from the ones it declares:',
            file=sys.stderr,
        )
        for problem in problems:
            print(f'  - {problem}', file=sys.stderr)
        print(
            'Check meta/execution-environment.yml (it must name requirements.txt and bindep.txt) and '
            'build_ignore in galaxy.yml (it must not leave them out of the tarball).',
            file=sys.stderr,
        )
        return 1
    print(
        f'Execution environment requirements of {args.collection} as declared: '
        f'{len(declared_entries(args.python))} Python ({args.python}), '
        f'{len(declared_entries(args.system))} system ({args.system}).'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
