"""Triton model repository generation: typed configs -> protobuf -> ``config.pbtxt`` files."""
