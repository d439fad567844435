# ssd-dehaze HTTP service (`dehaze serve`): POST /dehaze, /healthz, /readyz, /metrics, /models, web page at /.
#
# One Dockerfile, two variants chosen by BASE_IMAGE (see docker-compose.yml, profiles cpu and gpu):
#   cpu: python:3.11-slim-bookworm
#   gpu: nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 (CUDA 12 + cuDNN 9 for onnxruntime-gpu's CUDA provider)
# The image is the serve-only install, `pip install '.[serve]'`: no torch, no training stack. Inference runs
# in ONNX Runtime (onnxruntime-gpu on Linux x86_64, which also runs on the CPU provider), so it serves
# .onnx models; a .pt checkpoint would need the [train] extra (export it with `dehaze export` instead).
# The model is not baked in: mount a folder read-only at /models (DEHAZE_MODEL=/models/dehaze-default.onnx).
#
#   docker build -t ssd-dehaze:cpu .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" ssd-dehaze:cpu

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# the CUDA base has no Python; the python base already has it
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dehaze ./dehaze
COPY service ./service
# the [serve] extra only; the check fails the build if torch got in or the service cannot import
RUN pip install --upgrade "pip>=24" \
    && pip install ".[serve]" \
    && python -c "import importlib.util, onnxruntime, service.app; \
assert importlib.util.find_spec('torch') is None, 'torch must not be in the serving image'; \
print('providers:', onnxruntime.get_available_providers())"

FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin dehaze
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DEHAZE_HOST=0.0.0.0 \
    DEHAZE_PORT=8000 \
    DEHAZE_MODEL=/models/dehaze-default.onnx
USER dehaze
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
CMD ["dehaze", "serve", "--host", "0.0.0.0", "--port", "8000"]
