"""ecr-access-operator: keeps private ECR repositories pullable by Anyscale cluster node roles.

The package is laid out in layers (DESIGN.md §3, enforced by the import contracts in pyproject.toml):
- a pure core: `model`, `spec`, `policy`, `grants`, `handover`, `refusals`, `attachments` (the
  ledger's plan), `tenancy` and `revocation` (EcrGrantPolicy), `accounts` (EcrAccessAccount),
  `conditions`, `status`, `verdicts`,
  `coalesce`, `config`;
- the reconciler's parts, each with its own state, behind the `ports`: `roles`, `ownership`,
  `repositories`, and the `reconcile` façade over them; `cycle` (apply one grant and say what to
  report);
- the adapters: `aws/` (the only boto3) and `kube` (the only kubernetes client);
- the loops: `drift`, `sweep`, with `progress`, and `account_check`; and the kopf wiring:
  `watches`, `handlers`, `cli`.
"""
