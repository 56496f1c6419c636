"""`${VAR}` interpolation: an unset variable is one problem for its key, not one per check that key then fails."""

from __future__ import annotations

import pytest

from statusd.config import parse_config
from statusd.core.errors import ConfigError


def test_an_unset_variable_is_reported_once_for_its_key() -> None:
    raw = {"server": {"secret_key": "${H18_SECRET}"},
           "alerts": {"token": "${H18_ALERTS}"},
           "tokens": {"t": {"name": "T", "secret": "${H18_TOKEN}", "scopes": ["incidents:write"]}}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, {})
    assert sorted(err.value.problems) == [
        ("alerts.token", "environment variable H18_ALERTS is not set"),
        ("server.secret_key", "environment variable H18_SECRET is not set"),
        ("tokens.t.secret", "environment variable H18_TOKEN is not set"),
    ]


def test_other_keys_problems_are_still_reported_beside_an_unset_variable() -> None:
    raw = {"server": {"secret_key": "${H18_SECRET}", "port": 70000}, "alerts": {"token": "short"}}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, {})
    assert dict(err.value.problems) == {
        "server.secret_key": "environment variable H18_SECRET is not set",
        "server.port": "must be between 0 and 65535",
        "alerts.token": "must be at least 16 characters",
    }
