"""The whole statusd, or a real ecosystem peer (Alertmanager, Prometheus), end to end."""
