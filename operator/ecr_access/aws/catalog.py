"""What AWS knows about ECR, from botocore's own data: its actions and the regions it runs in.

The CRD's patterns let `ecr:BatchGetImages` and `us-west-9` through; the operator must refuse
them (`InvalidSpec`) rather than report "may pull" or retry an endpoint that cannot exist. The
lists come from the botocore release the operator is pinned to, so a new ECR action or region
arrives with a botocore upgrade, never from a hand-kept copy.
"""

from __future__ import annotations

from typing import Any

from ecr_access.model import Catalog

PARTITIONS = ("aws", "aws-cn", "aws-us-gov")
# IAM actions of ECR that are not API operations, so not in the service model (AWS's Service
# Authorization Reference for Amazon ECR lists them as permission-only actions).
PERMISSION_ONLY = ("BatchImportUpstreamImage", "ReplicateImage")


def load(session: Any, ecr_client: Any) -> Catalog:
    """From the operator's own boto3 session and ECR client: botocore has parsed their service model
    and endpoint data already, where a new botocore session would parse them again (11 MiB)."""
    operations = set(ecr_client.meta.service_model.operation_names) | set(PERMISSION_ONLY)
    regions = {partition: frozenset(session.get_available_regions("ecr", partition_name=partition))
               for partition in PARTITIONS}
    return Catalog(actions=frozenset(f"ecr:{name}" for name in operations), regions=regions)
