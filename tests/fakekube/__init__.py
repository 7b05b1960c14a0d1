"""A fake Kubernetes API server for tests; see :mod:`tests.fakekube.server`."""

from tests.fakekube.server import ApiError, FakeKubeServer

__all__ = ["ApiError", "FakeKubeServer"]
