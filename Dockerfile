# The relay worker image: `make image` (docker build -t conversion-relay:$(VERSION) .).
# Two stages: wheels are built and installed from the hash-pinned lock file into a virtualenv,
# then only that virtualenv is copied onto a clean base. The embedded broker (the `broker`
# extra) is not in it: production points RELAY_KAFKA_BOOTSTRAP at a real Kafka.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the hot-path modules (mypyc, setup.py); the runtime stage does not get it.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/relay
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN /opt/relay/bin/pip install --require-hashes --no-deps -r requirements.lock
# The build's own tools (setuptools, mypy for mypyc) hash-pinned too, in a virtualenv that
# stays in this stage (pip's build isolation would fetch them unpinned). It holds the runtime
# set as well: mypyc type-checks the hot path against those packages.
RUN python -m venv /opt/build && /opt/build/bin/pip install --require-hashes --no-deps \
    -r requirements.lock -r requirements-build.lock
COPY pyproject.toml setup.py README.md ./
COPY relay ./relay
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
    && /opt/relay/bin/pip install --no-deps /tmp/wheels/*.whl
# The image runs the compiled hot path: fail the build rather than ship the sources alone.
RUN /opt/relay/bin/python -c "import sys, relay.hotpath as h; sys.exit(not h.running_compiled())"

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="conversion-relay" \
      org.opencontainers.image.description="Relay of conversion events from Kafka to the X Ads API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/conversion-relay/conversion-relay" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin relay
COPY --from=build /opt/relay /opt/relay
ENV PATH=/opt/relay/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001
EXPOSE 9400
ENTRYPOINT ["relay"]
CMD ["run"]
