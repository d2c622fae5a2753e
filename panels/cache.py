"""The cluster panel's one cache: an in-process, thread-safe LRU with a TTL.

What is cached (the first item of a key names its kind):

* ``("summaries", dataset id, run key, run timestamp)``: the stored cluster summaries of an
  analysis run (:func:`.stored.summaries`);
* ``("health", vkey)``, ``("level", vkey, level)``: the aggregates of a view
  (:func:`.statistics.view_stats`), and ``("cards", vkey, level, sort, page)``: a page of cards.
  ``vkey`` is the view (:func:`visual_curation.core.views.view_key`), the object-view field,
  the analysis run's timestamp and the samples' :func:`data_version`.

Every key holds what its value depends on (any added, deleted, edited or tagged sample changes
:func:`data_version`, a new analysis changes the run timestamp), so a cached value is never stale;
the TTL only bounds how long unused entries are kept. This collapses the App's event bursts (three
"view changed" per view change, two per slider move: the panel renders after each) into one
query, and, with the other granularities computed in the background after the first render
(:func:`warm`), makes a knob move a cache hit.

Why not FiftyOne's ``fiftyone.operators.execution_cache`` (1.x): it requires an
``ExecutionContext`` as the first argument of the cached function (it raises otherwise), but these
functions take a view and are called without one (tests, the SDK, the panel's background thread);
its in-memory ("ephemeral") residency has no TTL and no lock around its LRU (the background
thread writes while a render reads); its other residencies serialize every value to JSON in
MongoDB (cluster ids are int dict keys; the cost would be a query per lookup, which is what the
cache is there to save); and it is switched off globally by ``execution_cache_enabled``. A
50-line LRU keeps the lookups at a dict access under a lock.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

logger = logging.getLogger(__name__)

TTL = 600.0
SIZE = 64
WARM_DELAY = 0.5


class Cache:
    """A thread-safe LRU of at most ``size`` entries, each kept at most ``ttl`` seconds after
    it was stored. ``None`` is never stored (it means "not cached")."""

    def __init__(self, size=SIZE, ttl=TTL):
        self.size, self.ttl = size, ttl
        self.lock = threading.Lock()
        self.entries = OrderedDict()  # key -> (stored at, value)

    def peek(self, key):
        """The cached value, or None."""
        with self.lock:
            hit = self.entries.get(key)
            if hit is None:
                return None
            if time.monotonic() - hit[0] >= self.ttl:
                del self.entries[key]
                return None
            self.entries.move_to_end(key)
            return hit[1]

    def store(self, key, value):
        if value is None:
            return
        with self.lock:
            self.entries[key] = (time.monotonic(), value)
            self.entries.move_to_end(key)
            while len(self.entries) > self.size:
                self.entries.popitem(last=False)

    def cached(self, key, fn):
        """The cached value of ``key``, else ``fn()`` (computed outside the lock), stored."""
        value = self.peek(key)
        if value is None:
            value = fn()
            self.store(key, value)
        return value

    def clear(self, *kinds):
        """Drops every entry, or only those whose key starts with one of ``kinds``."""
        with self.lock:
            if not kinds:
                self.entries.clear()
                return
            for key in [k for k in self.entries if k[0] in kinds]:
                del self.entries[key]


CACHE = Cache()
peek = CACHE.peek
store = CACHE.store
cached = CACHE.cached
clear = CACHE.clear

_warming = set()
_warming_lock = threading.Lock()


def warm(token, work, delay=WARM_DELAY):
    """Runs ``work()`` (which fills the cache) in a background thread, at most one at a time per
    ``token``, started ``delay`` seconds later so that it does not compete with the render that
    asked for it. Returns the thread, or None when one is already running for ``token``."""
    with _warming_lock:
        if token in _warming:
            return None
        _warming.add(token)

    def run():
        try:
            work()
        except Exception as e:  # noqa: BLE001 - only an optimisation
            logger.debug("cluster panel: background computation failed: %s", e)
        finally:
            with _warming_lock:
                _warming.discard(token)

    t = threading.Timer(delay, run)
    t.name = "vc-cluster-panel-prefetch"
    t.daemon = True
    t.start()
    return t


def warming():
    """Whether a background computation is running."""
    with _warming_lock:
        return bool(_warming)


def data_version(dataset):
    """A cheap fingerprint of the samples' state: ``(number of samples, latest
    last_modified_at)`` (index lookups, ~1 ms). Any added, deleted, edited or tagged sample
    changes it, so cached aggregates keyed on it are never stale."""
    coll = dataset._dataset._sample_collection
    try:
        n = coll.estimated_document_count()
        last = next(iter(coll.find({}, {"last_modified_at": 1})
                         .sort("last_modified_at", -1).limit(1)), {})
        return (n, str(last.get("last_modified_at")))
    except Exception:  # noqa: BLE001
        return (None, time.time())  # unknown: never reuse
