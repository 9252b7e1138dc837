"""The ai-agents-platform CrossGuard policy pack (see docs/policy.md).

``policy.pack.POLICIES`` is the list of policies; ``policy.checker.check_plan`` runs them over an
offline plan; ``policy/__main__.py`` serves them to the Pulumi engine or runs ``python -m policy check``.
Nothing here is imported eagerly: importing ``policy`` is cheap and never starts a server.
"""
