"""Visual Curation for FiftyOne.

SDK::

    import visual_curation as vc
    vc.compute_embeddings(dataset, model="demo")          # or ViT-B-32 / laion2b_s34b_b79k
    vc.analyze(dataset, label_field="ground_truth")       # vc_cluster_1..5, vc_dup_group, ...
    view = vc.find_similar(dataset, text="a photo of a sneaker", k=50)

As a FiftyOne plugin (``@visual-curation/curation``) this module registers the operators and the
cluster panel; the heavy libraries (torch, open_clip) load only when an operator runs.
"""
if __package__:   # as the package (SDK, plugin loader); pytest also imports this file alone
    from .core import (  # noqa: F401
        ANALYSES,
        DEMO_MODEL,
        accept_propagated,
        accept_suggestions,
        analyze,
        brain_key_for,
        carry_results,
        cluster_summaries,
        compute_embedding_map,
        compute_embeddings,
        delete_run,
        embed_image,
        embed_text,
        extract_core_frames,
        find_similar,
        flagged_view,
        import_embeddings,
        mark_reviewed,
        propagate_labels,
        relabeled,
        review_batch,
        review_state,
        search,
        set_issue_thresholds,
        set_labels,
        tag_flagged,
        undo_relabel,
    )

__version__ = "0.1.0"


def register(plugin):
    """Called by FiftyOne's plugin loader."""
    from .operators import OPERATORS
    from .panels import PANELS

    for op in OPERATORS:
        plugin.register(op)
    for panel in PANELS:
        plugin.register(panel)
