"""App panels."""
from .clusters import ClusterPanel

PANELS = [ClusterPanel]
