"""Serving: the KServe model server (model.py, codec.py, batching.py, server.py) and edge/cloud split inference.

Nothing is imported here: importing kserve parses ``sys.argv`` and takes seconds, so callers import submodules.
"""
