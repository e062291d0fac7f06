"""The AWS adapter: the only code that imports boto3 or botocore.

`iam.IamAdapter` and `ecr.EcrAdapter` implement the ports in `ecr_access.ports`; `errors.classify`
turns every botocore failure into an `AwsFault` of one kind, in one place; `session` builds clients
with botocore's `standard` retry mode and finds the operator's own account, region and partition.
"""
