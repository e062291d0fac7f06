"""ecr-access-operator: keeps private ECR repositories pullable by Anyscale cluster node roles.

The package is laid out in layers (see DESIGN.md §3): a pure core (`model`, `policy`, `conditions`,
`reconcile`, `ports`), one AWS adapter (`aws/`), and thin kopf wiring (`handlers`, `cli`).
"""
