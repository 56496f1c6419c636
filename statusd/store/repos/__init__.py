"""The repositories of `statusd.core.protocols`, written once in SQL for every dialect."""
