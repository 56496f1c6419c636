"""Delivery: the outbox worker, retry policy and sandboxed notification templates."""
