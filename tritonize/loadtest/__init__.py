"""Load testing a served deployment: Locust run headless, server-side counters, summary and plot.

Nothing here imports locust (it monkey-patches the process with gevent) but the locustfiles in
:mod:`tritonize.loadtest.locustfiles`, which :mod:`tritonize.loadtest.runner` hands to a Locust
subprocess.
"""
