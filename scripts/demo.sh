#!/usr/bin/env bash
# `make demo`: the whole reference procedure, end to end, on this machine: kubesim (emulated
# Kubernetes), a moto server (emulated AWS) and the real operator process, driven with kubectl.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
DIR=${DEMO_DIR:-.sandbox}
export KUBECONFIG="$PWD/$DIR/kubeconfig"
command -v kubectl >/dev/null || { echo "make demo needs kubectl on PATH"; exit 1; }

rm -rf "$DIR"
"$BIN/ecr-access-operator" sandbox --dir "$DIR" --resync-interval 30 >"$DIR.log" 2>&1 &
SANDBOX=$!
stop() {
  if kill -0 "$SANDBOX" 2>/dev/null; then
    kill -TERM "$SANDBOX"
    wait "$SANDBOX" 2>/dev/null || true
  fi
}
trap stop EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting the sandbox: kubesim, moto server, the operator; then the CRDs, an Anyscale-style account and a central registry account, an allow-all EcrGrantPolicy and examples/"
start=$SECONDS
until [ -f "$DIR/ready" ]; do
  if ! kill -0 "$SANDBOX" 2>/dev/null; then echo; cat "$DIR.log"; echo "the sandbox failed to start"; exit 1; fi
  printf '\r  waiting for the sandbox... %ss' "$((SECONDS - start))"
  sleep 0.5
done
printf '\r  the sandbox is up after %ss          \n' "$((SECONDS - start))"

step "kubectl wait --for=condition=Ready ecrgrants --all"
kubectl wait --for=condition=Ready ecrgrants --all --timeout=90s

step "kubectl get ecrgrants"
kubectl get ecrgrants

step "kubectl get ecrgrantpolicies (what each namespace may grant: sandbox-allow-all lets the example grants work)"
kubectl get ecrgrantpolicies

step "kubectl get ecraccessaccounts (the central registry account the operator acts in, by assuming a role there)"
kubectl get ecraccessaccounts

step "kubectl describe ecrgrant ml-images (key lines)"
kubectl describe ecrgrant ml-images | grep -E "^(Name|Namespace):|Anyscale Cloud Id|Managed Policy|Role Arn|Ready Repositories|Reason|Message|Sid|Type:" || true

step "The repository policies in (emulated) AWS: the operator's statements beside someone else's"
set -a; . "$DIR/aws.env"; set +a
"$BIN/python" - <<'PY'
import json, os
from ecr_sandbox.seed import CENTRAL_FOREIGN_STATEMENT, FOREIGN_STATEMENT, repository_policies
for repo, doc in repository_policies(os.environ):
    print(f"--- {repo}")
    print(json.dumps(doc, indent=2))
    statements = doc["Statement"] if doc else []
    for foreign in (FOREIGN_STATEMENT, CENTRAL_FOREIGN_STATEMENT):
        if foreign in statements:
            print(f"(the foreign statement {foreign['Sid']!r} is preserved exactly)")
PY

step "Stopping the sandbox"
stop
trap - EXIT
echo "done."
