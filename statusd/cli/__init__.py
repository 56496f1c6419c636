"""The `statusd` command line: serve, migrate, check-config, replay, fit-model."""
