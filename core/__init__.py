"""The App-free engine: embeddings in LanceDB and the analyzers that read them."""
from .analyze import ANALYSES, analyze, cluster_summaries, delete_run
from .embedding_map import compute_embedding_map
from .brain_index import brain_key_for
from .carry import carry_results
from .embeddings import compute_embeddings, embed_image, embed_text, import_embeddings
from .labels import accept_suggestions, relabeled, undo_relabel
from .models import DEMO_MODEL, load_model
from .propagation import accept_propagated, propagate_labels, review_batch, set_labels
from .review import (flagged_view, mark_reviewed, review_state, set_issue_thresholds,
                     tag_flagged)
from .similarity import SearchResult, find_similar, search, similar_ids
from .video import extract_core_frames

__all__ = [
    "accept_propagated", "accept_suggestions", "propagate_labels", "relabeled", "review_batch",
    "set_labels", "undo_relabel",
    "ANALYSES", "DEMO_MODEL", "analyze", "brain_key_for", "carry_results", "cluster_summaries",
    "compute_embedding_map", "compute_embeddings",
    "delete_run", "embed_image", "embed_text", "extract_core_frames", "find_similar", "import_embeddings",
    "load_model", "search", "SearchResult", "similar_ids",
    "flagged_view", "mark_reviewed", "review_state", "set_issue_thresholds", "tag_flagged",
]
