"""deskmail: a desktop email client that sets itself up and never loses mail."""

__version__ = "0.1.0"
