"""ecr_sandbox: the whole system on one machine, for developers, tests and the benchmark; not the product.

The operator's image installs only ``ecr_access``; this package, like kubesim and awsproxy, runs from a
source checkout (``pip install -e '.[sandbox]'``, as ``make demo`` does). It may import ecr_access;
ecr_access imports it only lazily, in ``ecr-access-operator sandbox``.

- ``sandbox``: ``Sandbox`` starts and supervises kubesim, a moto server and the real operator process
  (``ecr-access-operator sandbox`` runs it until stopped).
- ``seed``: what the sandbox puts in its emulated AWS account (``NODE_TRUST_POLICY`` and the rest) and in
  its cluster (``ALLOW_ALL_POLICY``, the EcrGrantPolicy ``sandbox-allow-all``), and how tests and the demo
  read it back.
- ``kubectl``: ``run_kubectl``, the one way the sandbox and the tests run the real kubectl.
"""
