"""Probe plugins: one module per kind, each a `<Kind>Config` and a `<Kind>Probe`.

Built-in kinds are registered exactly like third-party ones: through `builtin_kinds()`,
which the composition root calls; nothing is loaded at import time.
"""

from __future__ import annotations

from probes.base import ProbeKind


def builtin_kinds() -> dict[str, ProbeKind]:
    """The probe kinds shipped with statusd, by config `type`."""
    from probes import dns, heartbeat, http, tcp, tls

    return {
        "http": ProbeKind(http.HttpConfig, http.HttpProbe),
        "tcp": ProbeKind(tcp.TcpConfig, tcp.TcpProbe),
        "dns": ProbeKind(dns.DnsConfig, dns.DnsProbe),
        "tls": ProbeKind(tls.TlsConfig, tls.TlsProbe),
        "heartbeat": ProbeKind(heartbeat.HeartbeatConfig, heartbeat.HeartbeatProbe),
    }
