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
from .base import AnalysisInput, AnalysisResult, Analyzer, FieldSpec, IssueSpec  # noqa: F401
from .anomaly import AnomalyAnalyzer
from .clusters import LEVELS, ClustersAnalyzer
from .duplicates import DuplicatesAnalyzer
from .mislabels import MislabelsAnalyzer
from .outliers import OutliersAnalyzer
from .quality import QualityAnalyzer
from .uniqueness import UniquenessAnalyzer

REGISTRY: dict[str, Analyzer] = {
    a.name: a for a in (DuplicatesAnalyzer(), ClustersAnalyzer(), UniquenessAnalyzer(),
                        MislabelsAnalyzer(), OutliersAnalyzer(), AnomalyAnalyzer(),
                        QualityAnalyzer())
}

# -- everything else derives from the registry ----------------------------------------------
#: analysis names, in run order
ANALYSES: tuple[str, ...] = tuple(REGISTRY)
#: the analyses that need a label field
LABEL_ANALYSES: tuple[str, ...] = tuple(n for n, a in REGISTRY.items() if a.needs_labels)
#: issue name -> its spec (the field it is read from), in analysis order
ISSUES: dict[str, IssueSpec] = {i.name: i for a in REGISTRY.values() for i in a.issues}
#: ``vc_issues``: written by every run, from the issues' fields
ISSUES_FIELD = FieldSpec("vc_issues", "list[str]",
                         "Visual Curation: issues whose confidence ≥ the run's threshold")
#: field name -> spec, every field an analysis writes
FIELD_SPECS: dict[str, FieldSpec] = {
    **{f.name: f for a in REGISTRY.values() for f in a.field_specs},
    ISSUES_FIELD.name: ISSUES_FIELD}
#: flagged when an issue's confidence reaches this (per-issue thresholds are run options)
DEFAULT_THRESHOLD = 0.5

__all__ = ["REGISTRY", "ANALYSES", "LABEL_ANALYSES", "ISSUES", "ISSUES_FIELD", "FIELD_SPECS",
           "LEVELS", "DEFAULT_THRESHOLD", "AnalysisInput", "AnalysisResult", "Analyzer",
           "FieldSpec", "IssueSpec"]
