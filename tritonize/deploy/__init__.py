"""Deployment files generated from the spec and the pinned NGC release: docker compose and Kubernetes.

Nothing here is written by hand twice: ``versions.env`` names the release, ``release.py`` loads it,
``compose.py`` and ``kubernetes.py`` turn the spec plus the release into YAML through a YAML
library (never a string template), and the checked-in files are compared with a fresh generation
in the tests.
"""
