"""Delivery: the outbox worker and each message's declared stages (route → render → send → classify → settle)."""
