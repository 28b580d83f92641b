"""Outputs that people look at: annotated pictures."""
