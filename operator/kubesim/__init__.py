"""kubesim: a small Kubernetes API emulator for tests and the sandbox.

It speaks the real wire protocol so that the real kopf and the real kubectl can drive it on machines
with no kube-apiserver. It knows nothing about ecr_access.

Public API
----------
Command line::

    python -m kubesim [--port 0] [--kubeconfig PATH] [--context kubesim] [--bookmark-interval 60]

serves on 127.0.0.1 (port 0 picks a free port), writes a kubeconfig to PATH if given, prints
``kubesim listening on http://127.0.0.1:PORT`` once ready, and stops on SIGINT/SIGTERM (open watches are
closed, so it exits within a second or two).

In Python (``kubesim.server``):

- ``KubeSim(bookmark_interval=60.0, watch_timeout=1800.0, history_size=10_000)``: one emulated cluster.
  ``await sim.start(host="127.0.0.1", port=0) -> url`` and ``await sim.stop()`` run it in the current event
  loop; ``sim.api`` (``kubesim.api.Api``), ``sim.store`` and ``sim.registry`` give direct access to its state.
- ``run_in_thread(port=0, **KubeSim options) -> ThreadHandle``: the same in a daemon thread with its own
  loop. The handle has ``.url``, ``.sim``, ``.stop()`` and ``.call(function, *args)`` (run a function on the
  server's loop, e.g. to inspect state safely).
- ``write_kubeconfig(path, url, context="kubesim", namespace="default")``: a kubeconfig with a dummy token
  and current-context ``kubesim`` over plain http, which kubectl and kopf accept.

Served kinds
------------
Namespaces, Events, CustomResourceDefinitions and the custom resources they declare, plus the built-ins an
operator's install contains: ServiceAccount, ConfigMap, Secret, Service, apps/v1 Deployment and the
rbac.authorization.k8s.io/v1 ClusterRole, ClusterRoleBinding, Role and RoleBinding, so that
``kubectl apply -k`` of a whole install works with kubectl's default (strict) validation. The built-ins are
served generically, unlike in kube-apiserver:

- no schema: any field is stored as sent and none is rejected, nothing is defaulted (a Service gets no
  clusterIP), and their OpenAPI schemas accept anything; only a Secret's ``stringData`` is folded into ``data``;
- no controllers: a Deployment gets ``metadata.generation`` but never pods, nor a ``status``
  (no ``observedGeneration``), so ``kubectl rollout status`` waits forever; RBAC is stored but not enforced
  and ClusterRole aggregation does not happen;
- ``kubectl get`` shows Name and Age only; strategic merge patches merge the lists listed in ``patches``
  (containers, env, ports, volumes, ...) and replace the others;
- protobuf request bodies (``kubectl create <kind>``) are read for Namespace, ConfigMap, Secret and
  ServiceAccount only; use ``kubectl apply`` for the rest.

Modules: ``server`` (running), ``routes`` (HTTP), ``api`` (verb semantics), ``store`` (objects, versions,
watch history), ``resources`` (served types), ``discovery``, ``openapi``, ``tables``, ``jsonpath``,
``selectors``, ``patches``, ``schema`` (pruning, defaults, validation), ``cel`` (CEL rules), ``errors``.
"""
