"""One module per ``tritonize`` subcommand; see :mod:`tritonize.cli`."""
