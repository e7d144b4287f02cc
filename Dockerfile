# Conversant's image: `docker compose up` (compose.yaml) runs PostgreSQL, the migration, web and worker.
# The install and start steps live in scripts/container.sh, which CI runs without a container engine.

# --- build: a virtual environment with Conversant and its pinned dependencies -------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN sh scripts/container.sh install /src /opt/conversant

# --- run: the virtual environment only, as a user without privileges ----------------------------
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group conversant \
    && mkdir /data && chown conversant:conversant /data
COPY --from=build /opt/conversant /opt/conversant
COPY scripts/container.sh /usr/local/bin/conversant-container
ENV PATH=/opt/conversant/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=3000 \
    METRICS_PORT=9100 \
    DATABASE_URL=sqlite:////data/conversant.db
USER conversant
WORKDIR /data
VOLUME /data
EXPOSE 3000 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["conversant-container", "healthcheck"]
ENTRYPOINT ["conversant-container", "start"]
CMD ["web"]
