"""awsproxy: a fault-injecting HTTP proxy between an AWS SDK client and an AWS emulator (moto server).

It knows nothing of ecr_access. Tests and benchmarks put it in front of moto to inject throttling,
HTTP 500s, latency and dropped connections, and to count calls by AWS operation.
"""
