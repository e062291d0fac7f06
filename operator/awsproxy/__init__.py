"""awsproxy: a fault-injecting HTTP proxy between an AWS SDK client and an AWS emulator (moto server).

It knows nothing of ecr_access. Tests and benchmarks put it in front of moto to inject throttling,
HTTP 500s, latency and dropped connections, and to count calls by AWS operation, at the wire, for a
process they do not control (the operator is pointed at it with `AWS_ENDPOINT_URL`).

- `proxy`: `AwsProxy` (asyncio: `await start(host, port) -> url`, `await stop()`) and
  `run_in_thread(upstream, ...)` for synchronous callers; control endpoints under `/__awsproxy__/`.
- `faults`: the rates (`FaultConfig`, per operation or service) and the seeded draw.
- `protocol`: naming a request's service and operation; AWS errors in its protocol's wire format.
- `stats`: call counts by (service, operation) and outcome.
- `python -m awsproxy --upstream URL ...`: the same, as a command.
"""
