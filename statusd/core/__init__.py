"""The domain core: model, protocols, errors and clock. Standard library only.

Everything else in statusd imports from here; this package imports nothing of ours.
"""
