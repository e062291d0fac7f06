"""A memory probe for `python -m bench.memory`, and nothing else: `bench.memory` puts this directory
on the operator's PYTHONPATH (and only then), so Python imports this file at start-up as
`sitecustomize`. Production never sees it.

With ECR_MEMHOOK_DIR set, SIGUSR2 makes the process collect garbage and then write, into that
directory, `snapshot-<n>.json` (the traced and resident memory at that moment) and, when
tracemalloc is tracing (PYTHONTRACEMALLOC=<frames>), `snapshot-<n>.pickle`
(`tracemalloc.Snapshot.dump`). The JSON file is written last, by rename: its presence says both
are complete.
"""

import os
from collections.abc import Callable
from types import FrameType
from typing import Any

_DIR = os.environ.get("ECR_MEMHOOK_DIR")

if _DIR:
    _OUT: str = _DIR
    import collections
    import ctypes
    import gc
    import itertools
    import json
    import signal
    import sys
    import tempfile
    import time
    import tracemalloc

    _counter = itertools.count()

    def _status_kib(field: str) -> int:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def _holder(obj: object) -> str:
        """What kind of object refers to `obj`: a type name, or for a dict, its owner's."""
        for ref in gc.get_referrers(obj):
            if ref is _scratch or any(ref is mine for mine in _scratch):
                continue  # the census's own lists
            if isinstance(ref, dict):
                owners = [type(owner).__qualname__ for owner in gc.get_referrers(ref)
                          if owner is not _scratch and not any(owner is mine for mine in _scratch)
                          and not isinstance(owner, (dict, list))
                          and type(owner).__name__ != "frame"]
                keys = ",".join(sorted(str(key) for key in ref)[:4])
                return f"dict[{keys}] of {owners[0] if owners else '?'}"
            if type(ref).__name__ != "frame":
                return type(ref).__qualname__
        return "?"

    _scratch: list[object] = []

    def _pymalloc() -> dict[str, int]:
        """pymalloc's own account (`sys._debugmallocstats`, which writes to the C stderr): its
        arenas now and at the high-water mark, and the bytes in blocks in use and free in them."""
        wanted = {"# arenas allocated current": "pymalloc_arenas", "# arenas highwater mark": "pymalloc_arenas_peak",
                  "# bytes in allocated blocks": "pymalloc_used_bytes",
                  "# bytes in available blocks": "pymalloc_free_bytes"}
        with tempfile.TemporaryFile("w+") as out:
            sys.stderr.flush()
            saved = os.dup(2)
            try:
                os.dup2(out.fileno(), 2)
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            out.seek(0)
            found = {}
            for line in out:
                name, _, value = line.partition("=")
                key = wanted.get(name.strip())
                if key:
                    found[key] = int(value.strip().replace(",", ""))
        return found

    def _allocators() -> dict[str, int]:
        """Where the resident memory is, by allocator: Python's live blocks (pymalloc and
        PyMem), and glibc's heap split into bytes in use and bytes free but kept (`mallinfo2`,
        glibc 2.33+). RSS far above what is in use is memory freed but not returned: the peak of
        a burst, kept, not objects still alive."""
        class _MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                "fordblks", "keepcost")]

        found: dict[str, int] = {"python_allocated_blocks": sys.getallocatedblocks(), **_pymalloc()}
        try:
            libc = ctypes.CDLL(None)
            libc.mallinfo2.restype = _MallInfo2
            info = libc.mallinfo2()
        except (OSError, AttributeError):
            return found
        found.update({"malloc_heap_bytes": info.arena, "malloc_mmap_bytes": info.hblkhd,
                      "malloc_in_use_bytes": info.uordblks, "malloc_free_bytes": info.fordblks})
        return found

    def _census() -> dict[str, object]:
        """Live objects by type (all of them: `bench.memory` reports what grew), and for the decoded
        JSON dicts that look like a grant's status or body, what holds them (a sample of 200 of each): tracemalloc says
        where memory was allocated, this says who keeps it."""
        objects = gc.get_objects()
        counts = collections.Counter(type(obj).__qualname__ for obj in objects)
        shapes: dict[str, Callable[[dict[Any, Any]], bool]] = {
            "status": lambda d: "conditions" in d and "observedGeneration" in d,
            "body": lambda d: "metadata" in d and "kind" in d and "spec" in d,
            "metadata": lambda d: "resourceVersion" in d and "uid" in d}
        held: dict[str, dict[str, int]] = {}
        for name, shape in shapes.items():
            found = [obj for obj in objects if isinstance(obj, dict) and shape(obj)]
            _scratch[:] = [objects, found]
            holders = collections.Counter(_holder(obj) for obj in itertools.islice(found, 200))
            held[name] = {"count": len(found), **dict(holders.most_common(8))}
        for kind in ("LiveGrant", "GrantSpec", "GrantKey"):  # the operator's own per-grant objects
            found = [obj for obj in objects if type(obj).__qualname__ == kind]
            _scratch[:] = [objects, found]
            holders = collections.Counter(_holder(obj) for obj in itertools.islice(found, 300))
            held[kind] = {"count": len(found), **dict(holders.most_common(10))}
        _scratch.clear()
        return {"by_type": dict(counts.most_common()), "held": held}

    def _dump(signum: int, frame: FrameType | None) -> None:
        number = next(_counter)
        started = time.monotonic()
        before = _status_kib("VmRSS")
        collected = gc.collect()
        trimmed = None
        if os.environ.get("ECR_MEMHOOK_TRIM") == "1":  # what glibc would give back if asked
            ctypes.CDLL(None).malloc_trim(0)
            trimmed = _status_kib("VmRSS")
        info: dict[str, object] = {"pid": os.getpid(), "number": number, "tracing": tracemalloc.is_tracing(),
                "vmrss_before_gc_kib": before, "gc_collected": collected,
                "vmrss_kib": _status_kib("VmRSS"), "vmhwm_kib": _status_kib("VmHWM")}
        if trimmed is not None:
            info["vmrss_after_trim_kib"] = trimmed
        if tracemalloc.is_tracing():
            info["traced_bytes"], info["traced_peak_bytes"] = tracemalloc.get_traced_memory()
            tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snapshot-{number}.pickle"))
        info["allocators"] = _allocators()
        info["census"] = _census()
        info["took_s"] = round(time.monotonic() - started, 3)
        partial = os.path.join(_OUT, f"snapshot-{number}.json.tmp")
        with open(partial, "w") as out:
            json.dump(info, out)
        os.replace(partial, os.path.join(_OUT, f"snapshot-{number}.json"))

    signal.signal(signal.SIGUSR2, _dump)
