"""`[notifications] allow_private_targets`: CIDRs, each wrong one reported with its key path."""

from __future__ import annotations

import pytest

from statusd.config import parse_config
from statusd.core.errors import ConfigError


def test_allow_private_targets_takes_cidrs_and_names_each_bad_one() -> None:
    config = parse_config({"notifications": {"allow_private_targets": ["127.0.0.0/8", "fd00::/8", "10.1.2.3"]}}, {})
    assert config.notifications.allow_private_targets == ["127.0.0.0/8", "fd00::/8", "10.1.2.3"]
    assert parse_config({}, {}).notifications.allow_private_targets == []
    with pytest.raises(ConfigError) as caught:
        parse_config({"notifications": {"allow_private_targets": ["10.0.0.0/8", "intranet", "10.0.0.0/33"]}}, {})
    text = str(caught.value)
    assert "notifications.allow_private_targets[1]" in text and "notifications.allow_private_targets[2]" in text
    assert "allow_private_targets[0]" not in text
