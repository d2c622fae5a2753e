"""App panels."""
PANELS = []
