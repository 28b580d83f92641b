"""The HTTP routes, one module per group: health, analyze/redact, jobs, review."""
