"""`python -m awsproxy`: run the fault-injecting proxy on its own, e.g. in front of `moto_server`.

For trying the operator against a flaky AWS by hand:
    python -m awsproxy --upstream http://127.0.0.1:5000 --port 0 --throttle 0.3 --error 0.05
then point the operator's AWS_ENDPOINT_URL at the URL it prints. Change rates while it runs with
`curl -X POST URL/__awsproxy__/config -d '{"throttle": 0.1}'`; read counts at `URL/__awsproxy__/stats`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from awsproxy.faults import FaultConfig
from awsproxy.proxy import AwsProxy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m awsproxy", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--upstream", required=True, help="the AWS endpoint to forward to, e.g. http://127.0.0.1:5000")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one [0]")
    parser.add_argument("--throttle", type=float, default=0.0, help="rate of throttling errors [0]")
    parser.add_argument("--error", type=float, default=0.0, help="rate of HTTP 500 errors [0]")
    parser.add_argument("--drop", type=float, default=0.0, help="rate of connections closed before forwarding [0]")
    parser.add_argument("--drop-after", type=float, default=0.0,
                        help="rate of connections closed after forwarding, without an answer [0]")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to requests [0]")
    parser.add_argument("--latency-rate", type=float, default=1.0, help="share of requests given the latency [1]")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random draws, for reproducible runs")
    return parser.parse_args(argv)


async def serve(proxy: AwsProxy, host: str, port: int) -> None:
    url = await proxy.start(host, port)
    print(f"awsproxy listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await proxy.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = FaultConfig(throttle=args.throttle, error=args.error, drop=args.drop, drop_after=args.drop_after,
                             latency=args.latency_rate, latency_ms=args.latency_ms)
    except ValueError as error:
        print(f"awsproxy: {error}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(AwsProxy(args.upstream, faults=config, seed=args.seed), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
