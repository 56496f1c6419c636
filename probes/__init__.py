"""Probe plugins: one module per kind, each a `<Kind>Config` and a `<Kind>Probe`.

Built-in kinds are registered exactly like third-party ones: through `builtin_kinds()`,
which the composition root calls; nothing is loaded at import time, and a kind's module
only when a config names that kind.
"""

from __future__ import annotations

from probes.base import KindRegistry, ProbeKind


def builtin_kinds() -> KindRegistry:
    """The probe kinds shipped with statusd, by config `type`, each imported on first lookup."""
    return KindRegistry({"http": _http, "tcp": _tcp, "dns": _dns, "tls": _tls, "heartbeat": _heartbeat})


# One loader per kind, each importing only its own module. The dns and tls modules load dnspython
# (~3.8 MiB of RSS) and cryptography (~8.9 MiB): a server whose config has no such probe never pays for them.
def _http() -> ProbeKind:
    from probes import http

    return ProbeKind(http.HttpConfig, http.HttpProbe)


def _tcp() -> ProbeKind:
    from probes import tcp

    return ProbeKind(tcp.TcpConfig, tcp.TcpProbe)


def _dns() -> ProbeKind:
    from probes import dns

    return ProbeKind(dns.DnsConfig, dns.DnsProbe)


def _tls() -> ProbeKind:
    from probes import tls

    return ProbeKind(tls.TlsConfig, tls.TlsProbe)


def _heartbeat() -> ProbeKind:
    from probes import heartbeat

    return ProbeKind(heartbeat.HeartbeatConfig, heartbeat.HeartbeatProbe)
