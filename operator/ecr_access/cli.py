"""The `ecr-access-operator` command line (placeholder until the operator lands)."""


def main() -> None:
    raise SystemExit("not yet implemented")
