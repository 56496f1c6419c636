"""The write API under /api/v1, for people and tools with a token."""
