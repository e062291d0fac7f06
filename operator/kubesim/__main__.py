"""`python -m kubesim`: serve an emulated cluster until SIGINT/SIGTERM, for the sandbox and for people.

Prints `kubesim listening on http://127.0.0.1:PORT` once it is ready, so a launcher can wait for that line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from kubesim import server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free port)")
    parser.add_argument("--kubeconfig", default=None, help="write a kubeconfig for this server to PATH")
    parser.add_argument("--context", default="kubesim", help="context name in the written kubeconfig")
    parser.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between watch bookmarks")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    sim = server.KubeSim(bookmark_interval=args.bookmark_interval)
    url = await sim.start(server.LOOPBACK, args.port)
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig, url, args.context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"kubesim listening on {url}", flush=True)
    await stop.wait()
    await sim.stop()
    print("kubesim stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run until a signal arrives."""
    asyncio.run(_serve(_parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
