# One image for both processes: `dnssync` (the syncer) and `dnssync-resolver` (the default entrypoint).
#
#   docker build -t dnssync:0.1.0 .
#
# Two stages. `build` turns the project and its pinned dependencies (pyproject.toml) into wheels with `pip wheel`;
# `runtime` installs exactly those wheels, offline (--no-index), and nothing else: no compiler, no pip cache, no
# source tree, no tests. Every dependency ships a binary wheel for CPython 3.11 on linux (amd64 and arm64), so the
# slim image builds them; on a platform where one would compile from source, build that stage FROM python:3.11
# (which has gcc) - the runtime stage stays slim either way.
#
# Base images are pinned by tag. To pin by digest as well (reproducible builds; the tag is then only a label), look
# the digest up and append it, in both FROM lines:
#   docker buildx imagetools inspect python:3.11-slim        # "Digest: sha256:..."
#   FROM python:3.11-slim@sha256:<digest> AS build
# Keep both stages on the same image, so the wheels are built for the Python they are installed into.

FROM python:3.11-slim AS build
WORKDIR /src
# The package directories are exactly [tool.setuptools.packages.find] in pyproject.toml (devtools/ is not shipped).
COPY pyproject.toml README.md ./
COPY skydns/ skydns/
COPY resolver/ resolver/
COPY syncer/ syncer/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
LABEL org.opencontainers.image.title="dnssync" \
      org.opencontainers.image.description="Kubernetes Services and Ingresses as DNS names: the syncer (dnssync) and the authoritative resolver (dnssync-resolver)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
# The wheels are bind-mounted from the build stage for this one step (BuildKit), so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels dnssync==0.1.0 \
    && groupadd --gid 10001 dnssync \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dnssync
# The root filesystem is read-only in Kubernetes and compose: Python must not try to write bytecode caches.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DNSSYNC_HEALTH_URL=http://127.0.0.1:8080/healthz
# DNS (resolver --listen), the resolver's /healthz /readyz /metrics (--http-listen), the syncer's (--http-listen).
EXPOSE 5353/udp 5353/tcp 8080/tcp 8081/tcp
USER 10001:10001
# For `docker run` and compose; Kubernetes ignores it and uses the manifests' probes. The image has no curl: its
# Python asks. The default URL is the resolver's default --http-listen; for the syncer (default 127.0.0.1:8081) or
# another --http-listen port, set DNSSYNC_HEALTH_URL, e.g. -e DNSSYNC_HEALTH_URL=http://127.0.0.1:8081/healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DNSSYNC_HEALTH_URL'], timeout=2)"]
ENTRYPOINT ["dnssync-resolver"]
