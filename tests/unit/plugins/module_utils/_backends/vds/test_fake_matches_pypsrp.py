# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""The fake transport must not drift from pypsrp: what the backend calls exists in the real library.

Nothing here touches the network: pypsrp connects only when a request is sent.
"""

from __future__ import annotations

import inspect

import pytest

pypsrp_complex_objects = pytest.importorskip("pypsrp.complex_objects")
pypsrp_exceptions = pytest.importorskip("pypsrp.exceptions")
pypsrp_powershell = pytest.importorskip("pypsrp.powershell")
pypsrp_wsman = pytest.importorskip("pypsrp.wsman")

# pylint: disable=wrong-import-position
from ansible_collections.storage.vds.plugins.module_utils._backends import vds  # noqa: E402
from ansible_collections.storage.vds.tests.fakes import pypsrp as fake  # noqa: E402


@pytest.mark.parametrize("auth", vds.AUTH_CHOICES)
def test_real_wsman_takes_the_options_the_backend_builds(auth):
    connection = vds.Connection("win1.example.com", username="u", password="p", auth=auth, ca_cert="/ca.pem",
                                certificate_pem="/c.pem", certificate_key_pem="/k.pem")
    options = connection.wsman_options()
    accepted = set(inspect.signature(pypsrp_wsman.WSMan).parameters)
    extra = set(options) - accepted
    assert extra <= set(pypsrp_wsman.AUTH_KWARGS.get(auth, [])), extra
    wsman = pypsrp_wsman.WSMan(**options)
    transport = wsman.transport
    assert (transport.server, transport.port, transport.ssl, transport.auth) == ("win1.example.com", 5986, True, auth)
    assert transport.cert_validation == "/ca.pem"


@pytest.mark.parametrize("auth", ["basic", "certificate"])
def test_both_refuse_unencrypted_basic_and_certificate(auth):
    options = vds.Connection("h", username="u", password="p", auth=auth, ssl=False).wsman_options()
    with pytest.raises(ValueError) as real:
        pypsrp_wsman.WSMan(**options)
    with pytest.raises(ValueError) as double:
        fake.wsman.WSMan(**options)
    assert str(double.value) == str(real.value)


def test_runspace_pool_and_pipeline_api():
    wsman = pypsrp_wsman.WSMan("h", username="u", password="p")
    pool = pypsrp_powershell.RunspacePool(wsman, apartment_state=pypsrp_complex_objects.ApartmentState.MTA,
                                          thread_options=pypsrp_complex_objects.PSThreadOptions.REUSE_THREAD)
    assert (pool.apartment_state, pool.thread_options) == (1, 2)
    pool.protocol_version = "2.3"  # what open() negotiates
    shell = pypsrp_powershell.PowerShell(pool)
    shell.add_script(vds.SCRIPTS["Snapshot"]).add_parameters({"Subsystem": None})
    assert shell.had_errors is False and shell.streams.error == [] and shell.output == []
    for name in ("open", "close"):
        assert callable(getattr(pool, name)) and callable(getattr(fake.powershell.RunspacePool, name))
    for name in ("add_script", "add_parameter", "add_parameters", "invoke"):
        real = list(inspect.signature(getattr(pypsrp_powershell.PowerShell, name)).parameters)
        double = list(inspect.signature(getattr(fake.powershell.PowerShell, name)).parameters)
        assert double == real[:len(double)], name


def test_constants_and_exceptions():
    for enum in ("ApartmentState", "PSThreadOptions"):
        real, double = getattr(pypsrp_complex_objects, enum), getattr(fake.complex_objects, enum)
        for name in ("MTA",) if enum == "ApartmentState" else ("DEFAULT", "REUSE_THREAD"):
            assert getattr(real, name) == getattr(double, name)
    for name in ("AuthenticationError", "WinRMTransportError", "WSManFaultError"):
        assert issubclass(getattr(pypsrp_exceptions, name), pypsrp_exceptions.WinRMError)
        assert issubclass(getattr(fake.exceptions, name), fake.exceptions.WinRMError)
    real = pypsrp_exceptions.WinRMTransportError("http", 401, "denied")
    double = fake.exceptions.WinRMTransportError("http", 401, "denied")
    assert (real.code, str(real)) == (double.code, str(double))
    real_fault = pypsrp_exceptions.WSManFaultError("1", "m", "reason", "", "", "")
    assert real_fault.reason == fake.exceptions.WSManFaultError("1", "m", "reason", "", "", "").reason


def test_warnings_arrive_as_records_with_a_message():
    """The backend reads ``shell.streams.warning`` (the kept assembly's folder refused) as pypsrp gives it."""
    pypsrp_messages = pytest.importorskip("pypsrp.messages")
    assert pypsrp_powershell.PSDataStreams().warning == fake.powershell.PSDataStreams().warning == []
    real = pypsrp_messages.WarningRecord(message="folder refused")
    assert real.message == fake.powershell.WarningRecord("folder refused").message == "folder refused"
