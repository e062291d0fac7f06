"""kubesim: a small Kubernetes API emulator for tests and the sandbox.

It speaks the real wire protocol so that the real kopf and the real kubectl can drive it on machines
with no kube-apiserver. It knows nothing about ecr_access.
"""
