"""reengage: keeps chatbot conversations from dying silently."""

__version__ = "0.1.0"
