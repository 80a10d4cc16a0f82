"""Locust soak load shape (ramp, hold, spike, recover) of the installed package.

    locust -f loadtest/locustfile.py,loadtest/soak_shape.py --headless --host http://127.0.0.1:8000 \\
        --soak-users 8 --soak-ramp 10 --soak-hold 60 --soak-spike-users 32 --soak-spike 10 TritonGrpcUser

The shape and its ``--soak-*`` flags live in ``tritonize/loadtest/locustfiles/soak_shape.py``.
"""

from tritonize.loadtest.locustfiles.soak_shape import SoakShape  # noqa: F401
