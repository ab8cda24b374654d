"""The agent tests' trained checkpoints come from ``trained_tiny`` (tests/conftest.py)."""
