# reengage, production image: the wheel built from this checkout and the locked dependencies
# (uv.lock), on python:3.11-slim, running as an unprivileged user. What it runs is what
# tests/integration/test_wheel_install.py runs from a freshly built wheel (docs/deploy.md).
# Docker is not run by the test suite: keep this file minimal and in step with that test.

FROM python:3.11-slim AS build
RUN pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
RUN uv build --wheel --out-dir /dist \
 && uv export --frozen --no-dev --no-hashes --no-emit-project -o /dist/requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REENGAGE_LOG_JSON=true
COPY --from=build /dist /dist
RUN pip install --no-cache-dir -r /dist/requirements.txt /dist/reengage-*.whl \
 && rm -rf /dist \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin reengage \
 && install -d -o reengage /var/lib/reengage/media
USER reengage
WORKDIR /tmp
EXPOSE 8000 9101 9102
ENTRYPOINT ["reengage"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
