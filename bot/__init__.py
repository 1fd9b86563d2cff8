"""Votz: a conversational participation bot (campaigns, proposals and votes by message)."""

__version__ = "0.1.0"
