"""statusd: incident communication and status system."""

__version__ = "0.1.0"
