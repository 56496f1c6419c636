"""The incident engine: the coordinator's commands composed of grouping, lifecycle, escalation, routing, timers."""
