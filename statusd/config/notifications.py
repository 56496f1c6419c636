"""`[notifications]`: the outbox worker's retries, leases and batches, template overrides, and the private
networks outsiders' targets may reach."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from statusd.core.addresses import network_problem
from statusd.core.schema import Problems, positive


@dataclass(frozen=True)
class NotificationsConfig:
    """`[notifications]`: how the outbox retries, leases and batches deliveries, and where templates live."""

    max_attempts: int = 8
    backoff_initial_s: float = 5.0
    backoff_max_s: float = 900.0
    lease_s: float = 120.0  # a claimed message that is not settled by then is retried
    batch_size: int = 50
    concurrency: int = 16  # in flight per notifier: each has its own lane
    templates_dir: str | None = None  # overrides for the built-in templates
    # Networks (CIDRs) that subscribers' webhooks and reports' contacts may reach although they are not
    # public: loopback, private, link-local, … are refused otherwise, at subscribe time and at connect time.
    allow_private_targets: list[str] = field(default_factory=list)

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        return (positive(self.max_attempts, "max_attempts") + positive(self.backoff_initial_s, "backoff_initial_s")
                + positive(self.backoff_max_s, "backoff_max_s") + positive(self.lease_s, "lease_s")
                + positive(self.batch_size, "batch_size") + positive(self.concurrency, "concurrency")
                + ([("templates_dir", f"no such directory: {self.templates_dir}")]
                   if self.templates_dir is not None and not Path(self.templates_dir).is_dir() else [])
                + [(f"allow_private_targets[{i}]", problem) for i, cidr in enumerate(self.allow_private_targets)
                   if (problem := network_problem(cidr)) is not None])
