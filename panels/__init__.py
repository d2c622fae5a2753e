"""App panels: the cluster panel (grid) and the sample panel (sample modal)."""
from .clusters import ClusterPanel
from .sample import SamplePanel

PANELS = [ClusterPanel, SamplePanel]
