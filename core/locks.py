"""One Visual Curation run per (dataset, what) at a time: a lease document in FiftyOne's own
MongoDB, renewed by a heartbeat while the run works. A second run gets a clear
:class:`RunLockedError`; a lease whose heartbeat stopped (a killed process) expires and is taken
over, so a crash never blocks the dataset."""
from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

COLLECTION = "visual_curation_locks"
HEARTBEAT_S = 10.0
EXPIRE_S = 60.0


class RunLockedError(RuntimeError):
    """Another run is working on the same dataset."""


def _coll():
    import fiftyone.core.odm as foo

    return foo.get_db_conn()[COLLECTION]


def _now():
    return datetime.now(timezone.utc)


def _describe(doc):
    started = doc.get("started")
    age = ""
    if started is not None:
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        age = f", started {int((_now() - started).total_seconds())} s ago"
    return (f"{doc.get('what', 'a run')} (pid {doc.get('pid')} on {doc.get('host')}{age})")


def _is_dead(holder):
    """True when the holder ran on this host and its process no longer exists."""
    if holder.get("host") != socket.gethostname() or not holder.get("pid"):
        return False
    if holder["pid"] == os.getpid():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False
    return False


@contextmanager
def run_lock(dataset, what, wait=0.0):
    """Holds the lease ``(dataset id, what)`` for the ``with`` block.

    Args:
        wait: seconds to wait for a running holder before giving up
    """
    from pymongo.errors import DuplicateKeyError

    coll = _coll()
    key = f"{dataset._doc.id}:{what}"
    token = uuid.uuid4().hex
    me = dict(_id=key, token=token, what=what, pid=os.getpid(), host=socket.gethostname(),
              started=_now())
    deadline = time.time() + wait
    while True:
        now = _now()
        me["heartbeat"] = now
        # take it if free or expired
        res = coll.find_one_and_update(
            {"_id": key, "heartbeat": {"$lt": now - timedelta(seconds=EXPIRE_S)}},
            {"$set": me})
        if res is not None:
            break
        try:
            coll.insert_one(dict(me))
            break
        except DuplicateKeyError:
            holder = coll.find_one({"_id": key}) or {}
            if holder and _is_dead(holder):
                # the holder was killed on this machine: take its lease over at once
                coll.delete_one({"_id": key, "token": holder.get("token")})
                continue
            if time.time() >= deadline:
                raise RunLockedError(
                    f"Another Visual Curation run is working on dataset "
                    f"{dataset.name!r}: {_describe(holder)}. Wait for it to finish (or, if that "
                    f"process is gone, retry in {int(EXPIRE_S)} s).") from None
            time.sleep(min(1.0, max(0.05, deadline - time.time())))

    stop = threading.Event()

    def beat():
        while not stop.wait(HEARTBEAT_S):
            coll.update_one({"_id": key, "token": token}, {"$set": {"heartbeat": _now()}})

    t = threading.Thread(target=beat, name="vc-lock-heartbeat", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        coll.delete_one({"_id": key, "token": token})
