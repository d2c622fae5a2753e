"""The analyzers: small App-free engines with one interface (see :mod:`.base`).

``REGISTRY`` maps each analysis name to its analyzer instance::

    from visual_curation.core.analyzers import REGISTRY
    from visual_curation.core.analyzers.base import AnalysisInput

    inp = AnalysisInput(ids=ids, vectors=vecs, labels=labels, filepaths=paths)
    res = REGISTRY["duplicates"].run(inp)          # res.fields, res.summary, res.errors

Analyzers share ``inp``'s cached kNN graph, so run them on the same input object.
Parameters (``Analyzer.defaults``) have distinct names across analyzers, so one ``**params``
dict can be passed to all of them.
"""
from .base import AnalysisInput, AnalysisResult, Analyzer  # noqa: F401
from .clusters import ClustersAnalyzer
from .duplicates import DuplicatesAnalyzer
from .mislabels import MislabelsAnalyzer
from .outliers import OutliersAnalyzer
from .quality import QualityAnalyzer
from .uniqueness import UniquenessAnalyzer

REGISTRY: dict[str, Analyzer] = {
    a.name: a for a in (ClustersAnalyzer(), DuplicatesAnalyzer(), UniquenessAnalyzer(),
                        MislabelsAnalyzer(), OutliersAnalyzer(), QualityAnalyzer())
}

__all__ = ["REGISTRY", "AnalysisInput", "AnalysisResult", "Analyzer"]
