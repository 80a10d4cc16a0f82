"""``tritonize evaluate``: a deployment's accuracy on a labelled file, measured through the server.

:mod:`~tritonize.evaluation.metrics` computes accuracy, macro F1, per-class precision/recall and
the confusion matrix from (gold, predicted) pairs; :mod:`~tritonize.evaluation.run` sends the
file's texts to the served deployment (either protocol) and times each request;
:mod:`~tritonize.evaluation.report` writes JSON, Markdown and confusion-matrix PNGs.
"""
