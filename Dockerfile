# Production image: web (daphne), worker and beat run from it with different commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    VAR_DIR=/var/lib/quant

# PYTHONPATH=/app: daphne, celery and manage.py all import the project from /app (never the
# copy pip put in site-packages), so settings.BASE_DIR finds templates/ and static/ here.
WORKDIR /app
RUN useradd --create-home --uid 1000 quant && mkdir -p /var/lib/quant/media

COPY pyproject.toml requirements.lock README.md ./
COPY config ./config
COPY common ./common
COPY quant ./quant
COPY research ./research
COPY marketdata ./marketdata
COPY backtests ./backtests
COPY trading ./trading
COPY risk ./risk
COPY monitoring ./monitoring
RUN pip install --no-cache-dir -c requirements.lock .

COPY manage.py ./
COPY templates ./templates
COPY static ./static
# collectstatic needs settings, not secrets: a throw-away key for this one command. The
# files land in VAR_DIR/staticfiles inside the image; compose mounts a volume only on
# VAR_DIR/media, so a rebuilt image always serves its own static files and manifest.
RUN DEBUG=false SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && chown -R quant /var/lib/quant

USER quant
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "config.asgi:application"]
