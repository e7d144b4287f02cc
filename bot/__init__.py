"""Conversant: keeps a brand in the conversation on social platforms."""
