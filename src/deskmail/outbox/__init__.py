"""Composing and sending messages."""
