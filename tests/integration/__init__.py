"""One part of statusd against real peers on loopback: SQLite, aiohttp fakes, aiosmtpd."""
