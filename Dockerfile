# One image for both processes: `dnssync` (the syncer) and `dnssync-resolver`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY skydns ./skydns
COPY resolver ./resolver
COPY syncer ./syncer
RUN pip install --no-cache-dir . && useradd --system --uid 10001 dnssync
USER 10001
ENTRYPOINT ["dnssync-resolver"]
