# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The HRESULT table, its formatting, parsing and classification."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.storage.vds.plugins.module_utils._vds import errors
from ansible_collections.storage.vds.plugins.module_utils._vds.errors import (
    BY_NAME,
    BY_VALUE,
    Handling,
    HResultError,
    VdsError,
    classify,
    describe,
    hresult_name,
    is_success,
    parse_hresult,
    to_unsigned,
)

# The spec: "Return codes that matter" of shared/reference/vds-iscsi.md, copied by hand.
REFERENCE = {
    "S_OK": 0x00000000,
    "VDS_S_ALREADY_EXISTS": 0x00042714,
    "VDS_S_PROPERTIES_INCOMPLETE": 0x00042715,
    "VDS_E_NOT_SUPPORTED": 0x80042400,
    "VDS_E_INITIALIZE_NOT_CALLED": 0x80042402,
    "VDS_E_ANOTHER_CALL_IN_PROGRESS": 0x80042404,
    "VDS_E_OBJECT_NOT_FOUND": 0x80042405,
    "VDS_E_OPERATION_PENDING": 0x80042409,
    "VDS_E_OBJECT_DELETED": 0x8004240B,
    "VDS_E_CANCEL_TOO_LATE": 0x8004240C,
    "VDS_E_OPERATION_CANCELED": 0x8004240D,
    "VDS_E_OBJECT_EXISTS": 0x8004241D,
    "VDS_E_PROVIDER_CACHE_CORRUPT": 0x8004241F,
    "VDS_E_ACCESS_DENIED": 0x80042427,
    "VDS_E_OBJECT_STATUS_FAILED": 0x80042431,
    "VDS_E_PROVIDER_FAILURE": 0x80042442,
    "VDS_E_ASYNC_OBJECT_FAILURE": 0x8004244E,
    "VDS_E_TIMEOUT": 0x8004245F,
    "VDS_E_RETRY": 0x80042463,
    "VDS_E_ASSOCIATED_PORTALS_EXIST": 0x8004270C,
    "VDS_E_TARGET_PORTAL_NOT_FOUND": 0x80042901,
    "VDS_E_INVALID_IP_ADDRESS": 0x8004290B,
    "VDS_E_INVALID_STATE": 0x80042A05,
    "E_INVALIDARG": 0x80070057,
    "E_OUTOFMEMORY": 0x8007000E,
    "E_ACCESSDENIED": 0x80070005,
}

SUCCESSES = {"S_OK", "VDS_S_ALREADY_EXISTS", "VDS_S_PROPERTIES_INCOMPLETE"}

EXPECTED_HANDLING = {
    "VDS_E_ANOTHER_CALL_IN_PROGRESS": Handling.RETRY,
    "VDS_E_RETRY": Handling.RETRY,
    "VDS_E_PROVIDER_CACHE_CORRUPT": Handling.RECOVER_CACHE,
    "VDS_E_OBJECT_DELETED": Handling.REREAD,
}


# --- the table ----------------------------------------------------------------------------------


def test_every_reference_code_is_in_the_table_with_its_value():
    assert {name: BY_NAME[name].value for name in REFERENCE if name in BY_NAME} == REFERENCE
    assert set(REFERENCE) <= set(BY_NAME)


def test_table_entries_are_complete_and_unique():
    table = list(BY_NAME.values())
    assert len(table) == len(errors._TABLE)  # no name given twice
    assert len(BY_VALUE) == len(errors._TABLE)  # no value given twice
    for entry in table:
        assert entry.name and entry.name == entry.name.upper() and " " not in entry.name
        assert isinstance(entry.value, int) and 0 <= entry.value <= 0xFFFFFFFF
        assert entry.meaning.strip(), entry.name
        assert BY_VALUE[entry.value] is entry


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_success_bit_matches_the_name(name):
    value = REFERENCE[name]
    assert is_success(value) is (name in SUCCESSES)
    assert is_success(value) is name.startswith(("S_", "VDS_S_"))


def test_module_constants_match_the_table():
    for name in ("VDS_S_ALREADY_EXISTS", "VDS_E_NOT_SUPPORTED", "VDS_E_ANOTHER_CALL_IN_PROGRESS",
                 "VDS_E_OBJECT_NOT_FOUND", "VDS_E_OPERATION_PENDING", "VDS_E_OBJECT_DELETED",
                 "VDS_E_CANCEL_TOO_LATE", "VDS_E_OPERATION_CANCELED", "VDS_E_OBJECT_EXISTS",
                 "VDS_E_PROVIDER_CACHE_CORRUPT", "VDS_E_RETRY", "VDS_E_ASSOCIATED_PORTALS_EXIST",
                 "VDS_E_INVALID_STATE"):
        assert getattr(errors, name) == REFERENCE[name]
    assert errors.S_OK == 0


# --- describe / name ----------------------------------------------------------------------------


def test_describe_format_of_a_known_code():
    assert describe(0x80042405) == (
        "VDS_E_OBJECT_NOT_FOUND (0x80042405): the portal id does not refer to an existing object")


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_describe_every_code_names_value_and_meaning(name):
    value = REFERENCE[name]
    assert describe(value) == "%s (0x%08X): %s" % (name, value, BY_NAME[name].meaning)
    assert hresult_name(value) == name


@pytest.mark.parametrize("value, shown, kind", [
    (0x80070490, "0x80070490", "error"),        # HRESULT_FROM_WIN32(ERROR_NOT_FOUND)
    (0x8004FFFF, "0x8004FFFF", "error"),
    (0x00040001, "0x00040001", "success"),
    (0x00000001, "0x00000001", "success"),      # S_FALSE
])
def test_unknown_codes_are_shown_in_hex(value, shown, kind):
    text = describe(value)
    assert text.startswith(shown + ": ")
    assert "(%s)" % kind in text
    assert hresult_name(value) == shown


@pytest.mark.parametrize("signed, name", [
    (-2147212283, "VDS_E_OBJECT_NOT_FOUND"),    # 0x80042405 as COM hands it to .NET / PowerShell
    (-2147212284, "VDS_E_ANOTHER_CALL_IN_PROGRESS"),
    (-2147212257, "VDS_E_PROVIDER_CACHE_CORRUPT"),
    (-2147024809, "E_INVALIDARG"),
])
def test_signed_values_from_com_are_normalised(signed, name):
    assert to_unsigned(signed) == REFERENCE[name]
    assert describe(signed) == describe(REFERENCE[name])
    assert hresult_name(signed) == name
    assert not is_success(signed)
    assert parse_hresult(signed) == REFERENCE[name]
    assert HResultError(signed).hresult == REFERENCE[name]


@given(st.integers(min_value=-(2 ** 31), max_value=2 ** 31 - 1))
@settings(max_examples=200, deadline=None)
def test_signed_and_unsigned_spellings_agree(value):
    unsigned = to_unsigned(value)
    assert 0 <= unsigned <= 0xFFFFFFFF
    assert describe(value) == describe(unsigned)
    assert is_success(value) is (value >= 0)
    assert "0x%08X" % unsigned in describe(value)


# --- is_success ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, success", [
    (0, True),
    (0x00042714, True),
    (0x00042715, True),
    (0x00000001, True),
    (0x80042404, False),
    (0x80070057, False),
    (0xFFFFFFFF, False),
    (-1, False),
])
def test_is_success(value, success):
    assert is_success(value) is success


# --- parse_hresult ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("VDS_E_RETRY", 0x80042463),
    ("vds_e_retry", 0x80042463),
    ("  VDS_E_ANOTHER_CALL_IN_PROGRESS ", 0x80042404),
    ("S_OK", 0),
    ("VDS_S_ALREADY_EXISTS", 0x00042714),
    ("0x80042463", 0x80042463),
    ("0X8004241f", 0x8004241F),
    ("0x80070490", 0x80070490),
    ("-2147212283", 0x80042405),
    ("0", 0),
    (0x80042405, 0x80042405),
    (-2147212283, 0x80042405),
])
def test_parse_hresult_accepts_names_and_numbers(text, value):
    assert parse_hresult(text) == value


@pytest.mark.parametrize("text", ["VDS_E_NO_SUCH_THING", "", "   ", "0xZZ", "80042405h", "E_INVALIDARG!"])
def test_parse_hresult_rejects_unknown_text_with_guidance(text):
    with pytest.raises(ValueError) as raised:
        parse_hresult(text)
    message = str(raised.value)
    assert repr(text) in message
    assert "VDS_E_RETRY" in message and "0x80042463" in message


@pytest.mark.parametrize("value", [True, False])
def test_parse_hresult_rejects_booleans(value):
    with pytest.raises(ValueError, match="boolean"):
        parse_hresult(value)


@pytest.mark.parametrize("value", [None, 1.5])
def test_parse_hresult_rejects_other_types_with_value_error(value):
    # A fault list in the simulator's JSON may hold any JSON value: the error must be a ValueError
    # with a message, not an AttributeError from calling .strip() on it.
    with pytest.raises(ValueError):
        parse_hresult(value)


@pytest.mark.parametrize("value", [0x100000000, "0x180042405"])
def test_parse_hresult_rejects_values_outside_32_bits(value):
    # 0x100000000 must not silently become S_OK (0) by masking; 0x180042405 must not become
    # VDS_E_OBJECT_NOT_FOUND: an HRESULT is 32 bits, anything wider is a typo.
    with pytest.raises(ValueError):
        parse_hresult(value)


# --- classify -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_classify_every_code(name):
    expected = EXPECTED_HANDLING.get(name, Handling.FAIL)
    assert classify(REFERENCE[name]) is expected
    assert HResultError(REFERENCE[name]).handling is expected


@pytest.mark.parametrize("value", [0x80070490, 0x8004FFFF, 0x00000001, 0xFFFFFFFF])
def test_classify_unknown_codes_fail(value):
    assert classify(value) is Handling.FAIL


def test_classify_signed_values():
    assert classify(REFERENCE["VDS_E_ANOTHER_CALL_IN_PROGRESS"] - 2 ** 32) is Handling.RETRY
    assert classify(REFERENCE["VDS_E_PROVIDER_CACHE_CORRUPT"] - 2 ** 32) is Handling.RECOVER_CACHE
    assert classify(REFERENCE["VDS_E_OBJECT_DELETED"] - 2 ** 32) is Handling.REREAD


# --- exceptions ---------------------------------------------------------------------------------


def test_hresult_error_message_and_details():
    error = HResultError(0x80042405, "AddPortal 10.0.0.5:3260 -> group 2 of iqn.1991-05.com.microsoft:a", phase="wait",
                         extra="kept")
    assert str(error) == ("AddPortal 10.0.0.5:3260 -> group 2 of iqn.1991-05.com.microsoft:a: "
                          "VDS_E_OBJECT_NOT_FOUND (0x80042405): the portal id does not refer to an existing object")
    assert error.details == {"hresult": "0x80042405", "hresult_name": "VDS_E_OBJECT_NOT_FOUND", "phase": "wait",
                             "extra": "kept"}
    assert isinstance(error, VdsError)


def test_hresult_error_without_action_is_the_description():
    assert str(HResultError(0x80070490)) == describe(0x80070490)
    assert HResultError(0x80070490).details["hresult_name"] == "0x80070490"


def test_with_action_keeps_code_phase_and_extra_details():
    error = HResultError(0x80042404, phase="wait", extra=1)
    told = error.with_action("RemovePortal 10.0.0.1:3260 <- group 1 of iqn.x")
    assert told.hresult == 0x80042404 and told.phase == "wait"
    assert str(told).startswith("RemovePortal 10.0.0.1:3260 <- group 1 of iqn.x: VDS_E_ANOTHER_CALL_IN_PROGRESS")
    assert told.details["extra"] == 1 and told.details["phase"] == "wait"
    assert told.handling is Handling.RETRY


def test_amend_appends_and_returns_the_same_error():
    error = VdsError("it failed", step=1)
    assert error.amend("then this") is error
    assert str(error) == "it failed; then this"
    assert error.details == {"step": 1}


@pytest.mark.parametrize("cls", [errors.ValidationError, errors.NotFoundError, errors.IdentityError,
                                 errors.BackendUnavailable, errors.StateFileError, errors.WaitTimeout])
def test_typed_errors_are_vds_errors(cls):
    error = cls("message", key="value")
    assert isinstance(error, VdsError)
    assert str(error) == "message" and error.details == {"key": "value"}
