"""Load testing a served deployment: Locust run headless, server-side counters, summary and plot.

Nothing here imports locust (it monkey-patches the process with gevent); only
``loadtest/locustfile.py`` does, and :mod:`tritonize.loadtest.runner` starts it as a subprocess.
"""
