"""The locustfiles ``tritonize loadtest`` runs, shipped inside the package.

Locust loads a locustfile by path, so these travel as package data and are found through
:mod:`importlib.resources` (see :func:`tritonize.loadtest.runner.default_locustfile`); nothing
imports them but Locust (``import locust`` monkey-patches the process with gevent). The
repository's ``loadtest/locustfile.py`` and ``loadtest/soak_shape.py`` import these, so
``locust -f loadtest/locustfile.py`` works from a checkout too.
"""
