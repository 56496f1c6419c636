"""The incident engine: the coordinator's commands, escalation, routing, timers."""
