"""Per-face analyzers: head pose, image quality (and, later, observable attributes)."""
