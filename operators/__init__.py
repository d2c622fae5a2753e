"""App operators: thin wrappers over :mod:`visual_curation.core` and FiftyOne views.

One module per concern: :mod:`.embeddings`, :mod:`.analyses`, :mod:`.search` (find similar, text
search, most unique), :mod:`.curation` (clean dataset, split leakage), :mod:`.labels` (accept suggested labels,
undo), :mod:`.propagation` (propagate labels, review, accept, set label), :mod:`.video` (core
frames, source video), :mod:`.embedding_map` (the App's Embeddings panel on our map), :mod:`.cleanup` (delete
results); :mod:`.forms` holds the form pieces they
share and :mod:`.common` the messages, checks and progress reporting.

Each operator has one resolver (``<name>_settings(ctx)``) that turns ``ctx.params`` into its
settings with their defaults, used by both its form and ``execute``. The form
(``resolve_input``) checks the input (unknown or wrong-typed field, empty target, missing
embeddings or analyses, a user's own field in the way) and explains what to do next, so
``execute`` only runs what can succeed. Long runs (embeddings, analyses, core frames) are
generators that report progress and may be delegated.

The target (dataset / current view / selected samples) is FiftyOne's own input, declared by
:func:`.results.target_input`: it defaults to the whole dataset while the grid shows a result
this plugin set (named as such in the form), else to FiftyOne's default; ``execute`` resolves
it with :func:`.results.target`.
"""
from .analyses import RunAnalyses
from .cleanup import DeleteRun
from .curation import CleanDataset, FindLeakage
from .embedding_map import EmbeddingMap, ShowEmbeddingMap
from .embeddings import ComputeEmbeddings
from .labels import AcceptSuggestions, UndoRelabel
from .propagation import AcceptPropagated, PropagateLabels, ReviewPropagated, SetLabel
from .search import FindSimilar, SelectUniques, TextSearch
from .video import ExtractCoreFrames, OpenSourceVideo

OPERATORS = [ComputeEmbeddings, RunAnalyses, FindSimilar, TextSearch, SelectUniques,
             CleanDataset, FindLeakage, AcceptSuggestions, UndoRelabel, PropagateLabels,
             ReviewPropagated, AcceptPropagated, SetLabel, ExtractCoreFrames, OpenSourceVideo,
             EmbeddingMap, ShowEmbeddingMap, DeleteRun]

__all__ = ["OPERATORS", *(op.__name__ for op in OPERATORS)]
