"""Run records on the dataset (FiftyOne custom runs), so that results are discoverable in
``dataset.list_runs()``, re-runs with the same parameters are no-ops, and ``delete_run`` knows
exactly what to remove."""
from __future__ import annotations

import hashlib
import json
import re

from . import config as cfg

METHOD_EMBEDDINGS = "visual_curation.embeddings"
METHOD_ANALYSIS = "visual_curation.analysis"


def run_key(*parts):
    key = "_".join(str(p) for p in parts if p)
    key = re.sub(r"[^A-Za-z0-9_]+", "_", key).strip("_")
    if len(key) > 60:
        key = key[:50] + "_" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return key if key.startswith(cfg.RUN_KEY_PREFIX) else cfg.RUN_KEY_PREFIX + key


def params_hash(params):
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save(dataset, key, method, config, results=None):
    """Registers (or replaces) the run ``key`` with a JSON-able ``config`` and ``results``."""
    run_config = dataset.init_run(method=method, **config)
    if key in dataset.list_runs():
        dataset.delete_run(key)
    dataset.register_run(key, run_config)
    if results is not None:
        res = dataset.init_run_results(key, **results)
        dataset.save_run_results(key, res)


def load_config(dataset, key):
    if key not in dataset.list_runs():
        return None
    info = dataset.get_run_info(key)
    return {k: v for k, v in info.config.serialize().items() if k not in ("cls", "type")}


def load_results(dataset, key):
    if key not in dataset.list_runs():
        return None
    try:
        res = dataset.load_run_results(key, load_view=False)
    except Exception:  # noqa: BLE001
        return None
    if res is None:
        return None
    d = res.serialize()
    return {k: v for k, v in d.items() if k not in ("cls",)}


def ours(dataset, method=None):
    """Run keys written by Visual Curation (optionally of one method)."""
    keys = []
    for key in dataset.list_runs():
        if not key.startswith(cfg.RUN_KEY_PREFIX):
            continue
        conf = load_config(dataset, key) or {}
        m = conf.get("method")
        if m and m.startswith("visual_curation.") and (method is None or m == method):
            keys.append(key)
    return keys


def update_config(dataset, key, config):
    """Replaces the config of the run ``key`` by ``config`` (a dict as :func:`load_config`
    returns it), keeping the run's results and timestamp."""
    dataset.update_run_config(key, dataset.init_run(
        **{k: v for k, v in config.items() if k not in ("cls", "type")}))
