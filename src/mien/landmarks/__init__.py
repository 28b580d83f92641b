"""Landmarks: the dense face mesh and the named points derived from it."""
