"""The service on the cluster, in the modules below; import from them directly.

- ``contract``: what the images, the pods and monitoring agree on (names, ports, user, labels);
- ``settings``: the ``app`` section of a stack file;
- ``pods``: the hardened pod and container specs of the api, worker and migrations;
- ``ingress``: how the API is published (routes, TLS, limits);
- ``network_policies``: default-deny and the few flows allowed;
- ``component``: the ``Workloads`` component that declares them all.

Nothing is imported here, so reading the contract or the settings loads no Pulumi SDK.
"""
