"""Python-backend models, copied into the generated repository as ``<model>/1/model.py``.

Each module is a real, importable and tested module that depends only on numpy, tokenizers
and onnxruntime (what the NGC container can ``pip install``), never on the rest of tritonize:
the generator copies :mod:`tritonize.backends.common` next to each ``model.py`` as
``tritonize_backend_common.py``, so the copies run inside a Triton container that does not
have tritonize installed.
"""
