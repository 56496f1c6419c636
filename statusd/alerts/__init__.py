"""Alerts from the monitoring people already run (Alertmanager, Grafana, PagerDuty Events v2)."""
