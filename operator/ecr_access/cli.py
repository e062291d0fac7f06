"""The `ecr-access-operator` command: `run` starts the operator against the current kubeconfig and AWS.

`run` is the one code path that starts the operator; the sandbox (issue 3) starts it through the
same function, so what the demo shows is what production runs. `plan`, `adopt` and `whoami` take
the same settings (flags and environment), so that they answer as this operator would
(`commands`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import pathlib
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from ecr_access import accounts, handlers, kube, planreport, probes
from ecr_access import commands as commands_module
from ecr_access import config as config_module
from ecr_access.account_check import AccountChecker
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.config import Config
from ecr_access.cycle import InHand
from ecr_access.drift import DriftChecker, jittered
from ecr_access.metrics import Metrics
from ecr_access.model import LOG_REFKEY, GrantKey
from ecr_access.probes import Readiness
from ecr_access.reconcile import Reconciler
from ecr_access.sweep import Registry, Sweeper

DESCRIPTION = "Grant Anyscale cluster nodes pull access to private Amazon ECR repositories (EcrAccessGrant)."


def build_runtime(cfg: Config, metrics: Metrics | None = None) -> handlers.Runtime:
    """Connect to AWS and the cluster once, at start-up; fail loudly if either is unreachable."""
    kube.load_client_config()
    # Counted here, not in kopf's start-up handler: kopf retries a failing one every minute, where a
    # refusal (RBAC, no CRD) must exit with the reason.
    grants_at_start = kube.count_grants(cfg.effective_namespaces)
    metrics = metrics or Metrics()
    metrics.drift_interval.set(cfg.resync_interval)
    session = AwsSession.create(cfg.region, rate=cfg.aws_rate_limit, burst=cfg.aws_burst, metrics=metrics)
    defaults = session.defaults(cfg.region)
    cluster_id = cfg.cluster_id or kube.cluster_id(cfg.effective_namespaces)
    others = AssumedAccounts(session, accounts.session_name(cluster_id))  # bound to the accounts' index later
    reconciler = Reconciler(IamAdapter(session), EcrAdapter(session), cluster_id=cluster_id, account=defaults.account,
                            config=cfg, others=others, metrics=metrics)
    logging.getLogger(__name__).info(
        "Operator identity: account %s, region %s, partition %s, cluster id %s (Sid prefix %s)",
        defaults.account, defaults.region, defaults.partition, cluster_id, reconciler.prefix,
    )
    home = Registry(defaults.partition, defaults.region, defaults.account)
    in_hand = InHand(settle=cfg.resync_interval)
    drift = DriftChecker(
        reconciler,
        in_hand=in_hand,
        interval=cfg.resync_interval,
        retry_delay=cfg.retry_delay,
        stalled_retry_delay=cfg.stalled_retry_delay,
        write_status=patch_status,
        warn=handlers.warn,
        inform=handlers.inform,
        now=handlers.now,
        first_delay=jittered(cfg.resync_interval, cfg.resync_jitter),
    )
    readiness = Readiness()
    readiness.aws_answered = True  # session.defaults() above: GetCallerIdentity answered
    return handlers.Runtime(
        readiness=readiness,
        config=cfg,
        defaults=defaults,
        reconciler=reconciler,
        sweeper=Sweeper(reconciler.repositories, home, cfg.sweep_interval),
        drift=drift,
        in_hand=in_hand,
        grants_at_start=grants_at_start,
        patch_status=patch_status,
        read_spec=lambda key: kube.read_spec(key.namespace, key.name),
        read_grant=lambda key: kube.read_grant(key.namespace, key.name),
        patch_policy_status=kube.patch_policy_status,
        others=others,
        account_checker=AccountChecker(others, defaults, retry_delay=cfg.retry_delay,
                                       stalled_retry_delay=cfg.stalled_retry_delay, now=handlers.now,
                                       patch_status=kube.patch_account_status, recheck=drift.recheck_account),
    )


def patch_status(key: GrantKey, changes: Mapping[str, Any]) -> None:
    """The one status writer outside kopf's patch (see `handlers.Runtime.patch_status`)."""
    kube.patch_status(key.namespace, key.name, changes)


def run_operator(cfg: Config, *, liveness: str | None = None, readiness: str | None = None,
                 stop_flag: object = None, ready_flag: object = None) -> None:
    """Run the operator until stopped. Blocking; used by `run` and by the sandbox."""
    # Everything that can fail for good is done before kopf starts, so that a missing kubeconfig, a
    # grant listing refused (RBAC, no CRD), no AWS identity or a taken port exits non-zero with the
    # reason (the pod restarts and says why), where kopf would retry a failing start-up handler
    # every minute with its liveness endpoint down.
    metrics = Metrics()
    try:
        runtime = build_runtime(cfg, metrics)
        if cfg.metrics_port:
            metrics.serve(cfg.metrics_port, cfg.metrics_address)
        if readiness:
            probes.serve(readiness, runtime.readiness)
    except Exception as error:
        raise SystemExit(f"ecr-access-operator: cannot start: {error}") from error
    if cfg.metrics_port:
        logging.getLogger(__name__).info("Serving metrics on http://%s:%d/metrics", cfg.metrics_address,
                                         cfg.metrics_port)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, cfg, lambda config: runtime)
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


def configure_logging(log_format: str, *, verbose: bool = False, quiet: bool = False) -> None:
    """kopf's logging, as `kopf run --log-format` sets it up: in text, a line about an object (kopf's
    "Handler 'apply-on-create' succeeded.") starts with [namespace/name]; in JSON, the object is a
    field, LOG_REFKEY, where our own lines about a grant put it too (`GrantKey.log_ref`)."""
    formats = {"plain": kopf.LogFormat.PLAIN, "full": kopf.LogFormat.FULL, "json": kopf.LogFormat.JSON}
    # log_prefix None: kopf's own default, the prefix in text and not in JSON (where it is a field).
    # debug: kopf silences the asyncio logger unless debugging; --verbose lets it through.
    kopf.configure(debug=verbose, quiet=quiet, log_format=formats[log_format], log_prefix=None,
                   log_refkey=LOG_REFKEY)


def _add_settings(parser: argparse.ArgumentParser) -> None:
    env = config_module.env_name
    parser.add_argument("--cluster-id", help=f"Sid namespace of this cluster [{env('cluster_id')}; "
                        "default: UID of kube-system]")
    parser.add_argument("--namespace", action="append", dest="namespaces", metavar="NS",
                        help=f"watch only this namespace (repeatable) [{env('namespaces')}, comma-separated; "
                        "default: all namespaces]")
    parser.add_argument("--policy-mode", choices=config_module.POLICY_MODES,
                        help=f"Enforce: a grant may grant only what an EcrGrantPolicy selecting its namespace allows; "
                        f"Open: everything (single-tenant clusters) [{env('policy_mode')}; default Enforce]")
    parser.add_argument("--region", help=f"default region for repositories [{env('region')}; default: the AWS "
                        "session's region]")
    parser.add_argument("--resync-interval", type=float, metavar="SECONDS",
                        help=f"drift check interval [{env('resync_interval')}; default 300]")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help=f"serve Prometheus metrics at /metrics on this port, 0 disables [{env('metrics_port')}; "
                        "default 8000]")
    parser.add_argument("--sweep-interval", type=float, metavar="SECONDS",
                        help=f"orphan sweep interval, 0 disables [{env('sweep_interval')}; default 3600]")


def version() -> str:
    """The installed distribution's version (pyproject.toml), as `--version` and `version` print it."""
    try:
        return importlib.metadata.version("ecr-access-operator")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> None:
    # Not __doc__: the image runs with PYTHONOPTIMIZE=2, which drops docstrings.
    parser = argparse.ArgumentParser(prog="ecr-access-operator", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="print the version and exit")
    run = commands.add_parser("run", help="run the operator against the current kubeconfig and AWS credentials")
    _add_settings(run)
    run.add_argument("--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    run.add_argument("--readiness", metavar="URL", help="readiness endpoint, e.g. http://0.0.0.0:8081/readyz: 200 "
                     "once AWS answered and every grant, policy, namespace and account is listed, 503 before")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    run.add_argument("--log-format", choices=config_module.LOG_FORMATS,
                     help="kopf's log formats: plain (the message only), full (time, logger and level first) or "
                     "json (one object per line); a line about a grant names it: [namespace/name] in text, a "
                     f"\"{LOG_REFKEY}\" field in JSON [{config_module.env_name('log_format')}; default full]")
    plan = commands.add_parser(
        "plan", help="what applying (or deleting) these files would change in AWS, and each grant's verdict, "
        "without writing anything; exit code 0: no changes, 2: changes, 1: error",
        description=textwrap.fill(
            "Run the operator's own reconciler over the cluster's grants with the files applied, every AWS write "
            "caught and none made: shows, per repository policy, the statements and principals that would be added "
            "or removed, per role the managed policies attached or detached, and each affected grant's verdict "
            "(InvalidSpec, NotPermitted, ...). Needs only read permissions (deploy/iam/planner-policy.json).", 100,
            break_on_hyphens=False),
        epilog=planreport.JSON_FORM, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_settings(plan)
    plan.add_argument("-f", "--filename", action="append", dest="files", required=True, metavar="FILE",
                      help="YAML or JSON manifests (repeatable; - is standard input, a directory its files): "
                      "EcrAccessGrant, EcrGrantPolicy, EcrAccessAccount and Namespace objects")
    plan.add_argument("--offline", action="store_true",
                      help="take the files as the whole cluster and read no cluster (needs --cluster-id)")
    plan.add_argument("--delete", action="store_true", help="plan deleting the files' objects instead")
    plan.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (a diff) or json")
    plan.add_argument("--verbose", action="store_true", help="debug logging")
    adopt = commands.add_parser(
        "adopt", help="list (or with --apply remove) foreign repository policy statements that grants make "
        "redundant, such as the manual procedure's AllowPull",
        description="For each grant (the cluster's, or those in the files), find statements in its repositories' "
        "policies that this operator does not own and that grant nothing beyond the grant's own statement: Allow, "
        "no Condition, the grant's role as the only principal, actions the grant allows. --apply removes them, "
        "once the grant's statement carries the role, logging an AUDIT line for each. Exit code without "
        "--apply: 0 none found, 2 some; with --apply: 0 done, 1 something left undone.")
    _add_settings(adopt)
    adopt.add_argument("-f", "--filename", action="append", dest="files", default=[], metavar="FILE",
                       help="only the grants in these manifests (default: every grant in the cluster)")
    adopt.add_argument("--apply", action="store_true", help="remove the redundant statements")
    adopt.add_argument("-o", "--output", choices=("text", "json"), default="text")
    adopt.add_argument("--verbose", action="store_true", help="debug logging")
    whoami = commands.add_parser(
        "whoami", help="the AWS identity, region, cluster id, Sid prefix and policy mode the operator would use, "
        "and whether each EcrAccessAccount's role can be assumed")
    _add_settings(whoami)
    whoami.add_argument("-o", "--output", choices=("text", "json"), default="text")
    whoami.add_argument("--verbose", action="store_true", help="debug logging")
    sandbox = commands.add_parser(
        "sandbox", help="run kubesim, a moto server and the operator on this machine (no cluster, no AWS account)")
    sandbox.add_argument("--dir", default=".sandbox", type=pathlib.Path,
                         help="where to write kubeconfig, aws.env, operator.pid and ready (default .sandbox/)")
    sandbox.add_argument("--empty", action="store_true",
                         help="seed no AWS resources, no EcrGrantPolicy and apply no examples")
    sandbox.add_argument("--cluster-id", help="passed to the operator")
    sandbox.add_argument("--resync-interval", type=float, metavar="SECONDS", help="passed to the operator")
    sandbox.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"ecr-access-operator {version()}")
        return
    if args.command == "sandbox":
        # Only the log format of the settings: the sandbox passes the rest to the operator it starts.
        chosen = os.environ.get(config_module.env_name("log_format")) or Config().log_format
        if chosen not in config_module.LOG_FORMATS:
            parser.error(f"{config_module.env_name('log_format')} must be {', '.join(config_module.LOG_FORMATS)}")
        configure_logging(chosen, verbose=args.verbose)
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
            "policy_mode": args.policy_mode,
            "region": args.region,
            "resync_interval": args.resync_interval,
            "sweep_interval": args.sweep_interval,
            "metrics_port": args.metrics_port,
            "log_format": getattr(args, "log_format", None),
        })
    except ValueError as error:
        parser.error(str(error))
    # plan and whoami print their answer: their logs say only what went wrong. adopt's AUDIT lines
    # are what it did, so it logs as the operator does.
    configure_logging(cfg.log_format, verbose=args.verbose, quiet=args.command in ("plan", "whoami"))
    if args.command == "run":
        run_operator(cfg, liveness=args.liveness, readiness=args.readiness)
    elif args.command == "plan":
        raise SystemExit(commands_module.plan(cfg, args.files, offline=args.offline, delete=args.delete,
                                              output=args.output))
    elif args.command == "adopt":
        raise SystemExit(commands_module.adopt_command(cfg, args.files, apply=args.apply, output=args.output))
    elif args.command == "whoami":
        raise SystemExit(commands_module.whoami_command(cfg, output=args.output))


if __name__ == "__main__":
    main(sys.argv[1:])
