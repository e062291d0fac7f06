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
from types import FrameType

_DIR = os.environ.get("ECR_MEMHOOK_DIR")

if _DIR:
    _OUT: str = _DIR
    import gc
    import itertools
    import json
    import signal
    import time
    import tracemalloc

    _counter = itertools.count()

    def _status_kib(field: str) -> int:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def _dump(signum: int, frame: FrameType | None) -> None:
        number = next(_counter)
        started = time.monotonic()
        before = _status_kib("VmRSS")
        collected = gc.collect()
        info: dict[str, object] = {"pid": os.getpid(), "number": number, "tracing": tracemalloc.is_tracing(),
                "vmrss_before_gc_kib": before, "gc_collected": collected,
                "vmrss_kib": _status_kib("VmRSS"), "vmhwm_kib": _status_kib("VmHWM")}
        if tracemalloc.is_tracing():
            info["traced_bytes"], info["traced_peak_bytes"] = tracemalloc.get_traced_memory()
            tracemalloc.take_snapshot().dump(os.path.join(_OUT, f"snapshot-{number}.pickle"))
        info["took_s"] = round(time.monotonic() - started, 3)
        partial = os.path.join(_OUT, f"snapshot-{number}.json.tmp")
        with open(partial, "w") as out:
            json.dump(info, out)
        os.replace(partial, os.path.join(_OUT, f"snapshot-{number}.json"))

    signal.signal(signal.SIGUSR2, _dump)
