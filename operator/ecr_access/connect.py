"""What `plan`, `adopt` and `whoami` share: reaching AWS and the cluster as the operator would, once.

They answer for the operator from outside it, so they must see what it sees: the same settings
(`Config`, from the same flags and environment variables), the same identity answers (the
partition, region and account that default a spec's fields, from STS GetCallerIdentity), the same
cluster id (the UID of kube-system unless set) and so the same Sids, and the objects the
operator indexes (`kube.list_objects`). Only reads: nothing here writes to AWS or the cluster.
"""

from __future__ import annotations

import dataclasses

from ecr_access import accounts, kube
from ecr_access.aws.accounts import AssumedAccounts
from ecr_access.aws.ecr import EcrAdapter
from ecr_access.aws.iam import IamAdapter
from ecr_access.aws.session import AwsSession
from ecr_access.config import Config, env_name
from ecr_access.manifests import Objects
from ecr_access.model import Defaults
from ecr_access.ports import AwsFault


class ConnectError(Exception):
    """AWS or the cluster cannot be reached, or a setting the command needs is missing."""


@dataclasses.dataclass
class Connection:
    config: Config
    session: AwsSession
    defaults: Defaults
    cluster_id: str | None  # None: not known (the cluster could not be read and no --cluster-id)
    live: Objects | None  # the cluster's objects; None offline or when it could not be read
    cluster_error: str | None = None

    @property
    def session_name(self) -> str | None:
        """The RoleSessionName the operator assumes EcrAccessAccounts' roles with."""
        return accounts.session_name(self.cluster_id) if self.cluster_id is not None else None

    def ports(self) -> tuple[IamAdapter, EcrAdapter, AssumedAccounts]:
        """The operator's AWS adapters over this session: its own account's, and the assumed
        sessions of other accounts (bound to an account lookup by the caller)."""
        if self.cluster_id is None:
            raise ConnectError("no cluster id")
        return (IamAdapter(self.session), EcrAdapter(self.session),
                AssumedAccounts(self.session, accounts.session_name(self.cluster_id)))


def open_aws(config: Config) -> tuple[AwsSession, Defaults]:
    """The operator's session and its own partition, region and account (GetCallerIdentity)."""
    session = AwsSession.create(config.region, rate=config.aws_rate_limit, burst=config.aws_burst)
    try:
        return session, session.defaults(config.region)
    except (AwsFault, ValueError) as error:
        raise ConnectError(f"cannot reach AWS: {error}") from error


def open_cluster(config: Config) -> tuple[str, Objects]:
    """The cluster id and every object the operator indexes, from the current kubeconfig."""
    try:
        kube.load_client_config()
        cluster_id = config.cluster_id or kube.cluster_id(config.effective_namespaces)
        return cluster_id, Objects.of(kube.list_objects(config.effective_namespaces))
    except Exception as error:  # the kubernetes client raises many kinds: a missing file, a refused connection
        raise ConnectError(f"cannot read the cluster: {error}") from error


def open_all(config: Config, *, offline: bool = False, tolerate_cluster: bool = False, hint: str = "") -> Connection:
    """AWS, and the cluster unless `offline`. `tolerate_cluster`: an unreachable cluster is
    recorded in `cluster_error`, not raised (whoami still reports AWS). `hint`: added to the
    error when the cluster cannot be read."""
    if offline and not config.cluster_id:
        raise ConnectError(f"--offline needs --cluster-id (or {env_name('cluster_id')}): without it the cluster "
                           "id is the UID of the kube-system namespace, which only the cluster can tell, and the "
                           "Sids depend on it")
    session, defaults = open_aws(config)
    if offline:
        return Connection(config, session, defaults, config.cluster_id, None)
    try:
        cluster_id, live = open_cluster(config)
    except ConnectError as error:
        if not tolerate_cluster:
            raise ConnectError(f"{error}{hint}") from error
        return Connection(config, session, defaults, config.cluster_id, None, str(error))
    return Connection(config, session, defaults, cluster_id, live)
