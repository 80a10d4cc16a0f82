"""Supervision of the embedded Triton server: process inspection, probes, recovery, graceful stop.

Why a package of its own: ``tritonize.server`` starts and stops one ``tritonserver`` process;
keeping it running is a separate job that sits above it (it sends real inference requests and
uses the restricted model-repository API). Modules, in the order a request for help flows:
:mod:`processes` (which stub serves which model, RSS, ``/dev/shm``, descriptors, threads), :mod:`probe` (a tiny real
inference per deployment), :mod:`control` (load/unload with the admin key), :mod:`watchdog`
(what to do about what was seen), :mod:`supervisor` (does it, and drains on SIGTERM) and
:mod:`status` (the JSON file ``tritonize health`` reads).
"""
