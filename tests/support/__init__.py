"""What test modules share: fakes of real peers, one `eventually`, ports, leak checks and config builders.

Test modules import from here (or get fixtures from tests/conftest.py), never from each other:
`tests/test_support_layout.py` fails if one does.
"""
