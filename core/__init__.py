"""The App-free engine: embeddings in LanceDB and the analyzers that read them.

The SDK's names load on first use (PEP 562), so that a process which needs one part (a Ray
worker that only embeds, the CLI's help) does not import FiftyOne's Brain and every analysis.
``analyze`` is imported at once: it is also the name of a submodule, which would otherwise
shadow the function once that submodule is loaded.
"""
import importlib

from .analyze import ANALYSES, analyze, cluster_summaries, delete_run

#: every other SDK name -> the submodule that defines it
_LAZY = {
    "compute_embedding_map": "embedding_map",
    "brain_key_for": "brain_index",
    "carry_results": "carry",
    "compute_embeddings": "embeddings", "embed_image": "embeddings", "embed_text": "embeddings",
    "import_embeddings": "embeddings",
    "accept_suggestions": "labels", "relabeled": "labels", "undo_relabel": "labels",
    "DEMO_MODEL": "models", "load_model": "models",
    "accept_propagated": "propagation", "propagate_labels": "propagation",
    "review_batch": "propagation", "set_labels": "propagation",
    "flagged_view": "review", "mark_reviewed": "review", "review_state": "review",
    "set_issue_thresholds": "review", "tag_flagged": "review",
    "SearchResult": "similarity", "find_similar": "similarity", "search": "similarity",
    "similar_ids": "similarity",
    "extract_core_frames": "video",
}

__all__ = ["ANALYSES", "analyze", "cluster_summaries", "delete_run", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
