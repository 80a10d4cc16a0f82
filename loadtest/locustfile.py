"""Locust load test of a tritonize deployment: the user classes of the installed package.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000                  # web UI, both users
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless \\
        -u 8 -r 8 -t 20s --triton-model distilbert_emotion TritonGrpcUser           # one user class

The users, their ``--triton-*`` flags and their docs live in
``tritonize/loadtest/locustfiles/locustfile.py`` (the file ``tritonize loadtest`` runs); this
file only makes them loadable from a checkout.
"""

from tritonize.loadtest.locustfiles.locustfile import TritonGrpcUser, TritonHttpUser  # noqa: F401
