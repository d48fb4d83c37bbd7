# syntax=docker/dockerfile:1
# The IMM management API (and reconciler) for a Kubernetes cluster.
#   docker build -f deploy/images/api.Dockerfile -t REGISTRY/imm-api:0.1.0 .
# The base is pinned to an exact release; to pin its digest as well, build with
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.11-slim-bookworm` prints the digest).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/imm
COPY pyproject.toml /src/
COPY src /src/src
RUN /opt/imm/bin/pip install /src

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/imm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMM_DATA_DIR=/var/lib/imm/data \
    IMM_API_LISTEN=0.0.0.0:8000 \
    IMM_RUNTIME=kubernetes
RUN groupadd --gid 10001 imm \
 && useradd --uid 10001 --gid imm --no-create-home --home-dir /var/lib/imm --shell /usr/sbin/nologin imm \
 && install -d -o imm -g imm -m 0700 /var/lib/imm /var/lib/imm/data
COPY --from=build /opt/imm /opt/imm
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["imm"]
CMD ["up"]
