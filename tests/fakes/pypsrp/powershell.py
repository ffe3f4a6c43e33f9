# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors
"""pypsrp.powershell: a runspace pool on the fake host and the pipelines that run in it."""

from __future__ import annotations

import time
import typing as t

from ._host import FAULTS, JOURNAL, LATENCY_VARIABLE, Runspace, cost, count
from .complex_objects import ApartmentState, PSThreadOptions
from .wsman import WSMan


class RunspacePool:
    def __init__(self, connection: WSMan, apartment_state: int = ApartmentState.UNKNOWN,
                 thread_options: int = PSThreadOptions.DEFAULT, **kwargs: t.Any) -> None:
        self.connection = connection
        self.apartment_state = apartment_state
        self.thread_options = thread_options
        self.runspace: Runspace | None = None

    def open(self) -> None:
        JOURNAL.append({"event": "open", "apartment_state": self.apartment_state,
                        "thread_options": self.thread_options})
        fault = FAULTS.get("open")
        if isinstance(fault, BaseException):
            raise fault
        self.runspace = Runspace(self.connection.server)

    def close(self) -> None:
        JOURNAL.append({"event": "close"})
        self.runspace = None


class WarningRecord:
    """pypsrp.messages.WarningRecord: the text is its ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message


class PSDataStreams:
    def __init__(self) -> None:
        self.error: list[t.Any] = []
        self.warning: list[WarningRecord] = []


class PowerShell:
    def __init__(self, runspace_pool: RunspacePool) -> None:
        self.runspace_pool = runspace_pool
        self.commands: list[tuple[str, dict[str, t.Any]]] = []
        self.had_errors = False
        self.streams = PSDataStreams()
        self.output: list[t.Any] = []

    def add_script(self, script: str, use_local_scope: bool | None = None) -> "PowerShell":
        self.commands.append((script, {}))
        return self

    def add_parameter(self, parameter_name: str, value: t.Any = None) -> "PowerShell":
        self.commands[-1][1][parameter_name] = value
        return self

    def add_parameters(self, parameters: dict[str, t.Any]) -> "PowerShell":
        for name, value in parameters.items():
            self.add_parameter(name, value)
        return self

    def invoke(self) -> list[t.Any]:
        runspace = self.runspace_pool.runspace
        if runspace is None:
            raise RuntimeError("the runspace pool is not open")
        # One invocation is one round trip, whatever the pipeline holds.
        count(runspace.state_path, "invocations")
        time.sleep(cost(LATENCY_VARIABLE))
        for script, parameters in self.commands:
            output, errors, warnings = runspace.run(script, parameters)
            self.output.extend(output)
            self.streams.error.extend(errors)
            self.streams.warning.extend(WarningRecord(warning) for warning in warnings)
        self.had_errors = bool(self.streams.error)
        return self.output
