"""The TOML config file as frozen dataclasses, every problem reported with its key path."""
