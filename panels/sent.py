"""What each open panel already shows, so that an event whose render would be identical sends
nothing.

The App calls a panel on every event and then redraws the whole output it gets back; it sends
many events that change nothing the panel shows: three "view changed" per view change, one more
set after it reloads its page state (which it does after every panel-state change), a slider's
change on first draw, a double change per knob move. Redrawing the same cards each time is what
made a knob move take seconds in the App. :func:`changed` says whether an output differs from the
last one sent to that panel (kept in this process, per panel id, a short while).
"""
from __future__ import annotations

import hashlib
import json
import threading
import time

#: how long an output is taken as still shown (s); after that it is sent again anyway
KEEP_S = 120.0
_LOCK = threading.Lock()
_SENT: dict = {}   # panel id -> (digest, sent at)


def digest(output) -> str:
    """A short fingerprint of a panel output (a ``types.Property`` or its JSON)."""
    data = output.to_json() if hasattr(output, "to_json") else output
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def changed(panel_id, output, force=False) -> bool:
    """Whether ``output`` must be sent to ``panel_id``: it differs from the last one sent there,
    that one is older than :data:`KEEP_S`, or ``force`` (a panel that just opened). Records it
    as sent when it returns True."""
    d, now = digest(output), time.monotonic()
    with _LOCK:
        last = _SENT.get(panel_id)
        if not force and last is not None and last[0] == d and now - last[1] < KEEP_S:
            return False
        while len(_SENT) >= 256:
            _SENT.pop(next(iter(_SENT)))
        _SENT[panel_id] = (d, now)
        return True


def forget(panel_id) -> None:
    """The next output to ``panel_id`` is sent whatever it is."""
    with _LOCK:
        _SENT.pop(panel_id, None)
