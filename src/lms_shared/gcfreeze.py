"""Start-up objects out of the garbage collector's way (``LMS_GC_FREEZE``).

A service process holds well over 100,000 long-lived objects once it has
imported its libraries and built its app (modules, classes, routes,
schemas, SQLAlchemy metadata). CPython's full (generation 2) collection
walks every one of them: measured here, about 110 ms per collection,
during which the event loop answers nothing. Under load such a collection
comes every few seconds, and each is a 100 ms stall in the latency tail
(it was the whole p99 of the outbox benchmark).

So once a service has started, :func:`freeze_startup_objects` collects
what start-up left as garbage and moves every object alive then into the
permanent generation (:func:`gc.freeze`, the standard library's tool for
this): later collections walk only objects made since. Those start-up
objects live as long as the process anyway. It happens once per process
(a test process starting many services freezes at the first).
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_objects", "frozen"]

_state = {"frozen": False}


def freeze_startup_objects() -> int:
    """Collect once, then freeze every object alive now; how many were frozen.

    Only the first call in a process does it (later ones return 0).
    """
    if _state["frozen"]:
        return 0
    gc.collect()
    gc.freeze()
    _state["frozen"] = True
    return gc.get_freeze_count()


def frozen() -> bool:
    """Whether this process froze its start-up objects."""
    return _state["frozen"]
