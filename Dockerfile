# Production image: web (daphne), worker and beat run from it with different commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/var/lib/quant

WORKDIR /app
RUN useradd --create-home --uid 1000 quant && mkdir -p /var/lib/quant && chown quant /var/lib/quant

COPY pyproject.toml requirements.lock README.md ./
COPY quant ./quant
COPY marketdata ./marketdata
COPY backtests ./backtests
COPY trading ./trading
COPY risk ./risk
COPY monitoring ./monitoring
RUN pip install --no-cache-dir -c requirements.lock .

COPY manage.py ./
COPY templates ./templates
COPY static ./static
# collectstatic needs settings, not secrets: a throw-away key for this one command.
RUN DEBUG=false SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && chown -R quant /var/lib/quant

USER quant
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "quant.asgi:application"]
