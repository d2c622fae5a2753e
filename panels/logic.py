"""Compatibility names for code written against the former ``panels.logic`` (one module that
mixed statistics, cards, thumbnails and actions). Nothing is defined here: each name lives in the
module of its concern, import it from there:

* :mod:`.stored`: what the analysis stored (levels, cluster summaries, status, label paths)
* :mod:`.statistics`: health summary, per-cluster counts, uniqueness histogram
* :mod:`.cards`: a page of cluster cards (sorting, paging, prominent labels)
* :mod:`.thumbnails`: thumbnail files (object-view crops) and their URLs
* :mod:`.actions`: what the card buttons do (show, tag, similar, source video)
* :mod:`.views`: the App's views (source collection, comparable forms)
* :mod:`.cache`: the panel's cache and the samples' data version
"""
from __future__ import annotations

from ..core.analyzers import ISSUES, LEVELS
from .actions import (MAX_SIMILAR, cluster_view, default_tag, similar_view,
                      source_video_params, tag_cluster)
from .cache import data_version
from .cards import PAGE_SIZE, SORTS, build_cards, page_labels
from .statistics import HIST_BINS, ISSUE_TYPES, health, level_stats, levels_stats
from .stored import (DEFAULT_LEVEL, analysed_patch_fields, analysis_config,
                     clamp_level, detection_fields, has_embeddings, label_path, list_path,
                     parse_levels, run_stamp, status, summaries)
from .thumbnails import (ENV_THUMBS, N_THUMBS, THUMB_SIZE, attach_thumbnails,
                         crop_thumbnail, media_url, thumbs_dir)
from .views import is_whole, serialize_view, source_collection, stage_signature, view_key

__all__ = [
    "analysed_patch_fields", "analysis_config", "attach_thumbnails", "build_cards",
    "clamp_level", "cluster_view", "crop_thumbnail", "data_version", "DEFAULT_LEVEL",
    "default_tag", "detection_fields", "ENV_THUMBS", "has_embeddings", "health", "HIST_BINS",
    "is_whole", "ISSUE_TYPES", "ISSUES", "label_path", "level_stats", "LEVELS", "levels_stats",
    "list_path", "MAX_SIMILAR", "media_url", "N_THUMBS", "page_labels", "PAGE_SIZE",
    "parse_levels", "run_stamp", "serialize_view", "similar_view", "SORTS",
    "source_collection", "source_video_params", "stage_signature", "status", "summaries",
    "tag_cluster", "THUMB_SIZE", "thumbs_dir", "view_key",
]
