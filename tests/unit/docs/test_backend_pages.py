# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The documentation speaks of the backends in one voice: every backend the modules accept exists.

The support page says which backends exist and what each needs; no page may call one of them
unavailable, not provided, or leave it out of what "this release provides".
"""

from __future__ import annotations

import pathlib
import re
import typing as t

import pytest

from ansible_collections.storage.vds.plugins.module_utils._runner import BACKEND_ARGUMENT_SPEC

ROOT = pathlib.Path(__file__).resolve().parents[3]
BACKENDS: t.Tuple[str, ...] = tuple(BACKEND_ARGUMENT_SPEC["backend"]["choices"])

_NAMED = re.compile(r"`+(%s)`+" % "|".join(BACKENDS))
_UNAVAILABLE = re.compile(
    r"\b(?:not|never|no longer)\s+(?:yet\s+)?(?:provided?|available|implemented|included|shipped|supported|part of)\b"
    r"|\bunavailable\b|\bdoes\s+not\s+(?:yet\s+)?(?:provide|include|ship|support)\b|\bdoesn't\s+provide\b"
    r"|\b(?:planned|coming)\s+(?:for|in)\s+a\s+later\s+release\b", re.IGNORECASE)
_PROVIDES = re.compile(r"\b(?:release|collection)\s+(?:only\s+)?(?:provides|ships|includes|supports)\b"
                       r"|\bonly\s+(?:provides|ships|includes)\b", re.IGNORECASE)


def pages() -> t.List[pathlib.Path]:
    return sorted((ROOT / "docs" / "docsite" / "rst").glob("*.rst")) + [ROOT / "README.md"]


def sentences(text: str) -> t.List[str]:
    """Sentences with their line breaks folded; list items and table cells end a sentence too."""
    flat = re.sub(r"\s+", " ", re.sub(r"\n\s*(?:[*#-]|\d+\.|\|)\s", ". ", text))
    return [sentence.strip() for sentence in re.split(r"(?<=[.;:!?])\s+", flat) if sentence.strip()]


def contradictions(text: str) -> t.List[str]:
    """Sentences that name a backend as missing from this release."""
    found = []
    for sentence in sentences(text):
        named = set(_NAMED.findall(sentence))
        if not named:
            continue
        if _UNAVAILABLE.search(sentence) or (_PROVIDES.search(sentence) and named != set(BACKENDS)):
            found.append(sentence)
    return found


def test_the_pages_exist() -> None:
    assert len(pages()) > 5 and all(page.is_file() for page in pages())
    assert BACKENDS == ("simulator", "vds", "lio")


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_no_page_names_a_backend_as_unavailable(page: pathlib.Path) -> None:
    assert contradictions(page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("text", [
    "* A backend that this release does not provide (``vds``, ``lio``); see\n  :ref:`support`.",
    "  ``simulator``, ``vds`` or ``lio`` (required). This release provides ``simulator``; see\n  :ref:`x`.",
    "The `lio` backend is not yet available.",
    "Backend `vds` is unavailable on this release.",
])
def test_the_check_finds_a_backend_named_as_unavailable(text: str) -> None:
    assert len(contradictions(text)) == 1


@pytest.mark.parametrize("text", [
    "``simulator``, ``vds`` or ``lio`` (required). Which backends exist and what each needs: :ref:`x`.",
    "This release provides all three backends: ``simulator``, ``vds`` and ``lio``.",
    "A backend whose Python library is missing (``pypsrp`` for ``vds``) fails the task.",
    "The simulator is not a provider of Windows; nothing here is unavailable.",
])
def test_the_check_leaves_true_sentences_alone(text: str) -> None:
    assert contradictions(text) == []
