# One image, many services: every Pantau service is `pantau <command>` (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PANTAU_SCHEMAS_DIR=/app/schemas
WORKDIR /app
RUN useradd --system --uid 10001 --home /app pantau

COPY pyproject.toml constraints.txt README.md ./
COPY services ./services
COPY schemas ./schemas
COPY deploy/sources ./deploy/sources
COPY deploy/terms ./deploy/terms
COPY deploy/subscriptions ./deploy/subscriptions
COPY deploy/subscriptions-compose ./deploy/subscriptions-compose
COPY deploy/api ./deploy/api
RUN pip install --no-cache-dir -c constraints.txt -e . && chown -R pantau /app

USER pantau
ENTRYPOINT ["pantau"]
CMD ["--help"]
