"""Embedding on a Ray cluster: ``compute_embeddings(..., engine="ray")``.

The driver (the process that calls ``compute_embeddings``) reads from FiftyOne what to embed and
hands it to Ray Data as rows of work units (file path, sample id, item ids, boxes). Ray actors,
each loading the model once, read and decode the files, embed them and write the vectors as
Lance fragments straight into the table's storage (``lance_ray``'s fragment writer). Nothing is
visible until the driver commits all fragments in **one** Lance commit. Items whose row is
replaced (changed files) are deleted in that same commit, so readers never see a duplicate or a
half-written run:

- a worker killed mid-run: Ray restarts its actor and runs the lost batch again; the fragment the
  killed attempt may have written is never committed (its files are left for Lance's clean-up);
- the driver dies before the commit: the table is exactly as before, and the next run embeds the
  same items again.

Workers need the package and the model weights (``pip install fiftyone-visual-curation[ray]``);
they never talk to MongoDB. ``ray_address=None`` starts a local Ray on this machine.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
from dataclasses import dataclass, field

import numpy as np

from .store import schema as table_schema

logger = logging.getLogger(__name__)

#: environment variables handed to the Ray workers (offline model loading, no telemetry)
WORKER_ENV = ("HF_HUB_OFFLINE", "FIFTYONE_DO_NOT_TRACK", "SENTRY_OPT_OUT")


def require_ray():
    """Imports Ray and lance-ray, or raises an ImportError that says how to install them."""
    try:
        import lance_ray.fragment  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "engine='ray' needs Ray and lance-ray, an optional extra: "
            "pip install 'fiftyone-visual-curation[ray]'") from e
    return ray


@dataclass
class RayOutcome:
    """What the workers reported, per item (the driver writes it to FiftyOne)."""
    embedded: int = 0
    ok_samples: set = field(default_factory=set)
    same_ids: list = field(default_factory=list)
    same_fps: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    fragments: list = field(default_factory=list)
    ok_ids: list = field(default_factory=list)
    workers: int = 0
    #: seconds the actors spent on the batches (reading, embedding, writing), summed
    busy_seconds: float = 0.0


class Embedder:
    """A Ray Data actor: loads the model once, then embeds batches of work units and writes each
    batch's vectors as one Lance fragment. Returns one row per item outcome plus one row that
    carries the fragment's metadata."""

    def __init__(self, *, model, pretrained, device, batch_size, padding, min_box_size,
                 table_uri, schema, storage_version, storage_options, threads=1):
        from .models import load_model

        self.lm = load_model(model, pretrained, device)
        self.batch_size = int(batch_size)
        self.padding, self.min_box_size = padding, min_box_size
        self.table_uri, self.schema = table_uri, schema
        self.storage_version, self.storage_options = storage_version, storage_options
        self.threads = max(1, int(threads))

    def __call__(self, batch):
        import time

        import pyarrow as pa

        t0 = time.perf_counter()
        from .embed_local import Unit

        cols = batch.to_pydict()
        units = [Unit(s, p, f, [tuple(x) for x in json.loads(it)])
                 for s, p, f, it in zip(cols["sample_id"], cols["filepath"],
                                        cols["fingerprint"], cols["items"])]
        # decoding threads run ahead while the model embeds each full batch (on a GPU the two
        # overlap; on one CPU core there is a single thread and they take turns)
        pool = None
        if self.threads > 1:
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(self.threads)
            results = pool.map(self._prepare_one, units)
        else:
            results = map(self._prepare_one, units)
        out = {k: [] for k in ("status", "id", "sample_id", "info", "fragment")}
        rows = {k: [] for k in ("id", "sample_id", "filepath", "fingerprint", "content_hash",
                                "width", "height", "box")}
        pending, parts = [], []
        try:
            for unit, outcomes in results:
                for o in outcomes:
                    status, item_id = o[0], o[1]
                    info = None
                    if status == "ok":
                        _, _, p, fp, chash, size, box = o
                        pending.append(p)
                        for k, v in zip(rows, (item_id, unit.sample_id, unit.filepath, fp,
                                               chash, int(size[0]), int(size[1]), box)):
                            rows[k].append(v)
                        if len(pending) >= self.batch_size:
                            parts.append(self.lm.embed_tensors(self.lm.collate(pending)))
                            pending = []
                    elif status in ("same", "skip", "error"):
                        info = o[2]
                    for k, v in zip(out, (status, item_id, unit.sample_id, info, None)):
                        out[k].append(v)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if pending:
            parts.append(self.lm.embed_tensors(self.lm.collate(pending)))
        if parts:
            frags = self._write(rows, np.concatenate(parts))
            busy = f"{time.perf_counter() - t0:.6f}"   # this batch's work, on the last row
            for j, frag in enumerate(frags):
                for k, v in zip(out, ("fragment", None, None,
                                      busy if j == len(frags) - 1 else None,
                                      pickle.dumps(frag))):
                    out[k].append(v)
        return pa.table({"status": pa.array(out["status"], pa.string()),
                         "id": pa.array(out["id"], pa.string()),
                         "sample_id": pa.array(out["sample_id"], pa.string()),
                         "info": pa.array(out["info"], pa.string()),
                         "fragment": pa.array(out["fragment"], pa.binary())})

    def _prepare_one(self, unit):
        from .embed_local import prepare_unit

        return prepare_unit(unit, self.lm.prepare, self.padding, self.min_box_size)

    def _write(self, rows, vecs):
        """The rows as Lance fragments in the table's folder (not committed)."""
        from datetime import datetime, timezone

        import pyarrow as pa
        from lance_ray.fragment import write_fragment

        n, dim = vecs.shape
        data = dict(rows)
        data["vector"] = pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(vecs, np.float32).ravel()), dim)
        data["created_at"] = [datetime.now(timezone.utc)] * n
        table = pa.Table.from_pydict(data, schema=self.schema)
        return [f for f, _ in write_fragment(
            [table], self.table_uri, schema=self.schema,
            data_storage_version=self.storage_version, storage_options=self.storage_options)]


def _init_ray(ray, address):
    """Connects to ``address`` (or starts a local Ray when None); returns whether this call
    initialised Ray (and so should shut it down)."""
    if ray.is_initialized():
        return False
    _check_reachable(address)
    env = {k: os.environ[k] for k in WORKER_ENV if k in os.environ}
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={"env_vars": env} if env else None)
    return True


def _check_reachable(address, timeout=5.0):
    """Raises ConnectionError at once when nothing listens at a ``host:port`` or
    ``ray://host:port`` address (Ray itself retries for minutes before it gives up)."""
    import socket

    if not address or address in ("auto", "local"):
        return
    hostport = str(address).split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return   # a form Ray understands and this check does not: leave it to Ray
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(f"No Ray cluster answers at {address!r} ({e}); start one with "
                              "`ray start --head` or leave ray_address empty for a local Ray"
                              ) from None


def embed_units(units, *, store, model, pretrained, device="auto", batch_size=32, padding=0.1,
                min_box_size=8, ray_address=None, num_workers=None, num_gpus=None,
                rows_per_fragment=1024, progress=None, iters_str="images", start_msg=""):
    """Embeds ``units`` (see :mod:`.embeddings`) on Ray; returns a :class:`RayOutcome` whose
    ``fragments`` are written but not committed (see :func:`commit`)."""
    import warnings

    n_todo = sum(len(u.items) for u in units)
    if not n_todo:           # nothing new or changed: no cluster to start or join
        return RayOutcome()
    ray = require_ray()
    with warnings.catch_warnings():
        # Ray starts its processes with fork+exec; LanceDB warns about forks it need not fear
        warnings.filterwarnings("ignore", message="lancedb fork support")
        owns = _init_ray(ray, ray_address)
        try:
            return _run(ray, units, n_todo, store=store, model=model, pretrained=pretrained,
                        device=device, batch_size=batch_size, padding=padding,
                        min_box_size=min_box_size, num_workers=num_workers, num_gpus=num_gpus,
                        rows_per_fragment=rows_per_fragment, progress=progress,
                        iters_str=iters_str, start_msg=start_msg)
        finally:
            if owns:
                ray.shutdown()


def _run(ray, units, n_todo, *, store, model, pretrained, device, batch_size, padding,
         min_box_size, num_workers, num_gpus, rows_per_fragment, progress, iters_str,
         start_msg):
    import fiftyone.core.utils as fou
    import ray.data as rd

    ctx = rd.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if num_gpus is None else num_gpus
    use_gpu = gpus > 0 and device != "cpu"
    # a GPU actor decodes with the CPU cores that come with its GPU (up to 8 threads); on CPU
    # each actor is one core, and there is one actor per core
    cpus = int(resources.get("CPU", 1))
    per_actor_cpus = max(1, min(8, cpus // max(1, gpus))) if use_gpu else 1
    n_actors = num_workers or (gpus if use_gpu else max(1, int(resources.get("CPU", 1))))
    # a few blocks per actor: the work balances, and a lost block is a small retry
    per_block = max(1, min(rows_per_fragment, -(-n_todo // (4 * n_actors))))
    ds = rd.from_items(unit_rows(units), override_num_blocks=max(1, -(-n_todo // per_block)))
    ctor = embedder_settings(
        store, model=model, pretrained=pretrained,
        device=("cuda" if use_gpu else "cpu") if device == "auto" else device,
        batch_size=batch_size, padding=padding, min_box_size=min_box_size,
        threads=per_actor_cpus)
    mapped = ds.map_batches(
        _importable_embedder(), fn_constructor_kwargs=ctor, batch_size=None, batch_format="pyarrow",
        compute=rd.ActorPoolStrategy(size=n_actors), num_cpus=per_actor_cpus,
        num_gpus=1 if use_gpu else 0)   # Ray Data restarts a dead actor and retries its batch
    res = RayOutcome(workers=n_actors)
    done = 0
    with fou.ProgressBar(total=n_todo, progress=progress, iters_str=iters_str,
                         start_msg=start_msg) as pb:
        for b in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
            done += collect_outcomes(b.to_pydict(), res)
            pb.set_iteration(done)
    dup = len(res.ok_ids) - len(set(res.ok_ids))
    if dup:   # never commit a run that would leave two rows for one item
        raise RuntimeError(f"{dup} items came back twice from the Ray workers; nothing "
                           "was committed")
    return res


def unit_rows(units):
    """The work units as rows for Ray Data (what :class:`Embedder` reads)."""
    return [{"sample_id": u.sample_id, "filepath": u.filepath, "fingerprint": u.fingerprint,
             "items": json.dumps(u.items)} for u in units]


def embedder_settings(store, **kw):
    """:class:`Embedder`'s keyword arguments for writing into ``store``'s table."""
    lance_ds = store.table.to_lance()
    return dict(kw, table_uri=lance_ds.uri, schema=table_schema(store.dim),
                storage_version=lance_ds.data_storage_version,
                storage_options=_storage_options(store.uri))


def _importable_embedder():
    """:class:`Embedder` under the package's own name. Ray workers import the class by its
    module name; FiftyOne's plugin loader imports this file under a name of its own, which the
    workers cannot import."""
    import importlib

    try:
        return importlib.import_module("visual_curation.core.embed_ray").Embedder
    except ImportError as e:
        raise ImportError("engine='ray' needs the package installed where Ray runs: "
                          "pip install 'fiftyone-visual-curation[ray]' (on every node)") from e


def collect_outcomes(cols, res):
    """Adds one :class:`Embedder` output (columns as lists) to ``res``; returns how many items
    it reported on."""
    n = 0
    for status, item_id, sid, info, frag in zip(cols["status"], cols["id"], cols["sample_id"],
                                                cols["info"], cols["fragment"]):
        if status == "fragment":
            res.fragments.append(pickle.loads(frag))
            res.busy_seconds += float(info or 0)
            continue
        n += 1
        if status == "ok":
            res.embedded += 1
            res.ok_ids.append(item_id)
            res.ok_samples.add(sid)
        elif status == "same":
            res.same_ids.append(item_id)
            res.same_fps.append(info)
            res.ok_samples.add(sid)
        elif status == "skip":
            res.skipped[item_id] = info
        else:
            res.errors[sid] = info
    return n


def _storage_options(uri):
    from . import config as cfg

    return cfg.storage_options_from_env(uri)


def commit(store, fragments, replaced_ids=()):
    """Commits the workers' ``fragments`` to ``store``'s table in one Lance commit; rows of
    ``replaced_ids`` (items that were already in the table) are deleted in the same commit."""
    import lance

    from . import config as cfg

    if not fragments:
        return
    ds = store.table.to_lance()
    replaced = list(replaced_ids)
    if replaced:
        pred = cfg.sql_in("id", replaced)
        removed, updated = [], []
        for frag in ds.get_fragments():
            new = frag.delete(pred)
            if new is None:
                removed.append(frag.fragment_id)
            elif new.deletion_file != frag.metadata.deletion_file:
                updated.append(new)
        op = lance.LanceOperation.Update(removed_fragment_ids=removed, updated_fragments=updated,
                                         new_fragments=list(fragments))
    else:
        op = lance.LanceOperation.Append(list(fragments))
    lance.LanceDataset.commit(ds.uri, op, read_version=ds.version,
                              storage_options=_storage_options(store.uri))
    store._table = None   # reopen at the new version
