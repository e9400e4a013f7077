# Production image: python slim + libmagic, and wbritish (the language check's near
# spellings need its real words). Mount the config at /etc/mailguard and keep
# storage.data_dir on a volume (set data_dir = "/var/lib/mailguard" in the config).
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmagic1 wbritish \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/mailguard
COPY pyproject.toml README.md ./
COPY mailguard ./mailguard
RUN pip install --no-cache-dir . \
 && useradd --system --home-dir /var/lib/mailguard --shell /usr/sbin/nologin mailguard \
 && install -d -o mailguard -g mailguard -m 0700 /var/lib/mailguard
USER mailguard
VOLUME ["/var/lib/mailguard"]
EXPOSE 10025 8025
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=4)" || exit 1
ENTRYPOINT ["mailguard"]
CMD ["serve", "--config", "/etc/mailguard/mailguard.toml"]
