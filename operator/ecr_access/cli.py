"""The `ecr-access-operator` command: `run` starts the operator against the current kubeconfig and AWS.

`run` is the one code path that starts the operator; the sandbox (issue 3) starts it through the
same function, so what the demo shows is what production runs.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import kopf
from kubernetes import client, config

from ecr_access import config as config_module
from ecr_access import handlers
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.config import Config
from ecr_access.drift import DriftChecker, jittered
from ecr_access.model import GrantKey
from ecr_access.reconcile import LiveGrant, Reconciler, Registry, Tuning
from ecr_access.sweeper import Sweeper

DESCRIPTION = "Grant Anyscale cluster nodes pull access to private Amazon ECR repositories (EcrAccessGrant)."


def load_kube_client_config() -> None:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def cluster_id_from_kube(namespaces: Sequence[str]) -> str:
    """The default cluster id: the kube-system namespace's UID, plus the watched namespaces when the
    operator is namespace-scoped (so that two namespace-scoped deployments never share Sids)."""
    uid = client.CoreV1Api().read_namespace("kube-system").metadata.uid
    return f"{uid}/{','.join(sorted(namespaces))}" if namespaces else str(uid)


def build_runtime(cfg: Config) -> handlers.Runtime:
    """Connect to AWS and the cluster once, at start-up; fail loudly if either is unreachable."""
    load_kube_client_config()
    session = AwsSession.create(cfg.region, rate=cfg.aws_rate_limit, burst=cfg.aws_burst)
    defaults = session.defaults(cfg.region)
    cluster_id = cfg.cluster_id or cluster_id_from_kube(cfg.effective_namespaces)
    reconciler = Reconciler(
        iam=IamAdapter(session),
        ecr=EcrAdapter(session),
        cluster_id=cluster_id,
        account=defaults.account,
        tuning=Tuning(
            role_cache_ttl=cfg.role_cache_ttl,
            fresh_age=cfg.cache_ttl,
            coalesce_window=cfg.coalesce_window,
            coalesce_longest=cfg.coalesce_longest,
            propagation_window=cfg.propagation_window,
            unreachable_after=cfg.unreachable_after,
        ),
    )
    logging.getLogger(__name__).info(
        "Operator identity: account %s, region %s, partition %s, cluster id %s (Sid prefix %s)",
        defaults.account, defaults.region, defaults.partition, cluster_id, reconciler.prefix,
    )
    home = Registry(defaults.partition, defaults.region, defaults.account)
    return handlers.Runtime(
        config=cfg,
        defaults=defaults,
        reconciler=reconciler,
        sweeper=Sweeper(reconciler, home, cfg.sweep_interval),
        drift=DriftChecker(
            reconciler,
            interval=cfg.resync_interval,
            retry_delay=cfg.retry_delay,
            write_status=write_status,
            warn=handlers.warn,
            now=handlers.now,
            first_delay=jittered(cfg.resync_interval, cfg.resync_jitter),
        ),
        count_grants=lambda: count_grants(cfg.effective_namespaces),
        patch_status=_patch_status,
        read_spec=read_spec,
    )


def _patch_status(grant: GrantKey, status: Mapping[str, Any]) -> None:
    """A JSON merge patch of the grant's status subresource (None values delete keys)."""
    group, version, plural = handlers.RESOURCE
    client.CustomObjectsApi().patch_namespaced_custom_object_status(
        group, version, grant.namespace, plural, grant.name, {"status": dict(status)})


def read_spec(grant: GrantKey) -> Mapping[str, Any] | None:
    """The grant's spec as the API server has it now; None once the grant is gone."""
    group, version, plural = handlers.RESOURCE
    try:
        body = client.CustomObjectsApi().get_namespaced_custom_object(group, version, grant.namespace, plural,
                                                                      grant.name)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
    spec: Mapping[str, Any] | None = body.get("spec")
    return spec


def write_status(grant: LiveGrant, status: Mapping[str, Any]) -> None:
    """The drift check's status write. A grant deleted meanwhile (404) has nothing left to report."""
    try:
        _patch_status(grant.key, status)
    except client.ApiException as error:
        if error.status != 404:
            raise


def count_grants(namespaces: Sequence[str]) -> int:
    """0 when no grant exists in the watched namespaces (then the empty indexes are already whole)."""
    api = client.CustomObjectsApi()
    group, version, plural = handlers.RESOURCE
    if not namespaces:
        return len(api.list_cluster_custom_object(group, version, plural, limit=1).get("items", []))
    return sum(len(api.list_namespaced_custom_object(group, version, ns, plural, limit=1).get("items", []))
               for ns in namespaces)


def run_operator(cfg: Config, *, liveness: str | None = None, stop_flag: object = None,
                 ready_flag: object = None) -> None:
    """Run the operator until stopped. Blocking; used by `run` and by the sandbox."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, cfg, build_runtime)
    settings = kopf.OperatorSettings()
    handlers.configure(settings)
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=True,  # one active replica (DESIGN §2): no peering objects needed
        clusterwide=not cfg.namespaces,
        namespaces=cfg.effective_namespaces,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,  # type: ignore[arg-type]
        ready_flag=ready_flag,  # type: ignore[arg-type]
    )


def _add_settings(parser: argparse.ArgumentParser) -> None:
    env = config_module.env_name
    parser.add_argument("--cluster-id", help=f"Sid namespace of this cluster [{env('cluster_id')}; "
                        "default: UID of kube-system]")
    parser.add_argument("--namespace", action="append", dest="namespaces", metavar="NS",
                        help=f"watch only this namespace (repeatable) [{env('namespaces')}, comma-separated; "
                        "default: all namespaces]")
    parser.add_argument("--region", help=f"default region for repositories [{env('region')}; default: the AWS "
                        "session's region]")
    parser.add_argument("--resync-interval", type=float, metavar="SECONDS",
                        help=f"drift check interval [{env('resync_interval')}; default 300]")
    parser.add_argument("--sweep-interval", type=float, metavar="SECONDS",
                        help=f"orphan sweep interval, 0 disables [{env('sweep_interval')}; default 3600]")


def main(argv: Sequence[str] | None = None) -> None:
    # Not __doc__: the image runs with PYTHONOPTIMIZE=2, which drops docstrings.
    parser = argparse.ArgumentParser(prog="ecr-access-operator", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator against the current kubeconfig and AWS credentials")
    _add_settings(run)
    run.add_argument("--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    sandbox = commands.add_parser(
        "sandbox", help="run kubesim, a moto server and the operator on this machine (no cluster, no AWS account)")
    sandbox.add_argument("--dir", default=".sandbox", type=pathlib.Path,
                         help="where to write kubeconfig, aws.env, operator.pid and ready (default .sandbox/)")
    sandbox.add_argument("--empty", action="store_true", help="seed no AWS resources and apply no examples")
    sandbox.add_argument("--cluster-id", help="passed to the operator")
    sandbox.add_argument("--resync-interval", type=float, metavar="SECONDS", help="passed to the operator")
    sandbox.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "sandbox":
        try:  # a development tool, not in the image: see ecr_sandbox
            from ecr_sandbox import sandbox as sandbox_module  # noqa: PLC0415 - only the sandbox needs moto's world
        except ModuleNotFoundError as missing:
            raise SystemExit(f"ecr-access-operator sandbox: {missing.name} is not installed; install the [sandbox] "
                             "extra from a source checkout: pip install -e '.[sandbox]'") from None

        raise SystemExit(sandbox_module.main(args.dir, seed=not args.empty, resync_interval=args.resync_interval,
                                             cluster_id=args.cluster_id))
    try:
        cfg = config_module.load({
            "cluster_id": args.cluster_id,
            "namespaces": args.namespaces,
            "region": args.region,
            "resync_interval": args.resync_interval,
            "sweep_interval": args.sweep_interval,
        })
    except ValueError as error:
        parser.error(str(error))
    if args.command == "run":
        run_operator(cfg, liveness=args.liveness)


if __name__ == "__main__":
    main(sys.argv[1:])
