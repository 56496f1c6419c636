"""Probe monitoring: pure thresholds, the scheduler that runs probes, the result writer."""
