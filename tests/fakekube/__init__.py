"""A fake Kubernetes API server for tests; see :mod:`tests.fakekube.server`."""

from tests.fakekube.server import ApiError, Failure, FakeKubeServer, Request

__all__ = ["ApiError", "Failure", "FakeKubeServer", "Request"]
