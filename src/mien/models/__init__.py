"""Model cards and vendored model files."""
