# syntax=docker/dockerfile:1
# The IMM model server: what every endpoint replica runs (python -m imm.serving ...).
#   docker build -f deploy/images/model-server.Dockerfile -t REGISTRY/imm-model-server:0.1.0 .
# ONNX models need nothing more; for TensorFlow SavedModels add the (large) extra:
#   --build-arg EXTRAS=tensorflow
# The base is pinned to an exact release; pin its digest too with
#   --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/imm
COPY pyproject.toml /src/
COPY src /src/src
RUN /opt/imm/bin/pip install "/src${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE}
# The pod runs with a read-only root file system: models are cached in /var/cache/imm and
# HOME/TMPDIR point at /tmp, both volumes mounted by the runtime's Deployment.
ENV PATH=/opt/imm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    IMM_SERVING_CACHE_DIR=/var/cache/imm
RUN groupadd --gid 10001 imm \
 && useradd --uid 10001 --gid imm --no-create-home --home-dir /tmp --shell /usr/sbin/nologin imm \
 && install -d -o imm -g imm -m 0750 /var/cache/imm
COPY --from=build /opt/imm /opt/imm
USER 10001:10001
EXPOSE 8500
# The runtime gives the whole command line; this default serves nothing useful alone.
CMD ["python", "-m", "imm.serving", "--help"]
