# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) storage.vds contributors

from __future__ import annotations


class ModuleDocFragment:
    # Options every module shares; set them once with module_defaults and group/storage.vds.vds.
    DOCUMENTATION = r"""
options:
  backend:
    description:
      - Which provider the module talks to.
      - V(simulator) is the embedded simulated VDS provider, kept in the JSON file O(simulator_state). Use it
        to rehearse playbooks and in CI; see the simulator guide for the file format.
      - V(vds) drives the Virtual Disk Service (VDS) of the Windows host O(vds_host) over PowerShell Remoting.
        The module runs where the task runs (usually the controller, with C(delegate_to) set to C(localhost)), needs
        the Python library C(pypsrp) there, and compiles a small C# class on the Windows host at its first
        call. See the Windows guide for what the host needs.
      - V(lio) drives the Linux kernel iSCSI target (LIO) of the host the module runs on, through the Python
        library C(rtslib-fb). It runs there as root (C(become)); see the Linux guide.
    type: str
    required: true
    choices: [simulator, vds, lio]
  simulator_state:
    description:
      - Path of the simulated provider's state file, on the host that runs the module.
      - Required when O(backend=simulator).
    type: path
  wait_timeout:
    description:
      - Seconds to wait for each asynchronous provider operation (one C(AddPortal), one C(RemovePortal), ...).
      - When an operation outlives it, the module asks the provider to cancel it, reads the state again and
        fails saying what is known.
    type: int
    default: 300
  vds_host:
    description:
      - The Windows host whose VDS service holds the iSCSI targets (name or address of its WinRM listener).
      - Required when O(backend=vds). If not set, the environment variable E(VDS_HOST) is used.
    type: str
  vds_port:
    description:
      - Port of the WinRM listener. Defaults to V(5986) with O(vds_ssl=true) and V(5985) without.
    type: int
  vds_username:
    description:
      - Account to log on with; it must be a member of Administrators or Backup Operators on the host.
      - If not set, the environment variable E(VDS_USERNAME) is used. With O(vds_auth=kerberos) it may be omitted
        to use the ticket of the controller's credential cache.
    type: str
  vds_password:
    description:
      - Password of O(vds_username). Never logged or returned.
      - If not set, the environment variable E(VDS_PASSWORD) is used.
    type: str
  vds_auth:
    description:
      - How to authenticate to WinRM, as with Ansible's C(psrp) connection.
      - V(basic) and V(certificate) protect nothing without TLS, so they require O(vds_ssl=true).
    type: str
    choices: [negotiate, kerberos, ntlm, credssp, certificate, basic]
    default: negotiate
  vds_ssl:
    description:
      - Connect over HTTPS. Without it, only V(negotiate), V(kerberos), V(ntlm) and V(credssp) work, and they
        encrypt the messages themselves.
    type: bool
    default: true
  vds_cert_validation:
    description:
      - Verify the TLS certificate of O(vds_host) against O(vds_ca_cert) or the system's trusted authorities.
      - Set V(false) only on a network you trust, for example a lab whose hosts use self-signed certificates.
    type: bool
    default: true
  vds_ca_cert:
    description:
      - Path of a PEM bundle of the certificate authorities to trust for O(vds_host), on the host that runs the
        module.
    type: path
  vds_certificate_pem:
    description:
      - Path of the client certificate (PEM) for O(vds_auth=certificate), which requires it.
    type: path
  vds_certificate_key_pem:
    description:
      - Path of the private key (PEM, unencrypted) of O(vds_certificate_pem), required by O(vds_auth=certificate).
    type: path
  vds_connection_timeout:
    description:
      - Seconds to wait for the WinRM listener to accept a connection.
    type: int
    default: 30
  lio_save_config:
    description:
      - With O(backend=lio), save the running configuration of the kernel target after a run that changed it,
        as C(targetctl save) does, so that it survives a reboot. The result's C(saved) says whether it
        saved.
      - The kernel keeps its target configuration in memory only; with V(false) a change is lost at the next
        reboot unless it is saved otherwise.
      - Before the first change of a run, the folder C(rtslib-fb) prefers for the configuration is created when
        missing (owned by root, mode C(0755); C(/etc/rtslib-fb-target) on Debian and Ubuntu, C(/etc/target)
        elsewhere), so that the distribution's restore at boot finds the file. The file is readable by root only.
      - A change is refused before anything is done when the saved file holds iSCSI targets the kernel does not
        run, since saving would drop them from it.
    type: bool
    default: true
  lio_save_file:
    description:
      - With O(backend=lio), the file O(lio_save_config) writes. Defaults to the file C(rtslib-fb) restores at
        boot (C(/etc/rtslib-fb-target/saveconfig.json) on Debian and Ubuntu, C(/etc/target/saveconfig.json)
        elsewhere).
    type: path
requirements:
  - pypsrp >= 0.8.0 (Python library, where the module runs), for O(backend=vds) only
  - rtslib-fb >= 2.1.75 (Python library, on the Linux target host), for O(backend=lio) only
"""

    ACTIONGROUP = r"""
attributes:
  action_group:
    description: Use C(group/storage.vds.vds) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - storage.vds.vds
"""
