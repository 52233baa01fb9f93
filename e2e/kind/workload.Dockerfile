# The workload images of the kind run: real Debian packages, as the local e2e run builds them from
# .debs (e2e/test-images.ts); here from Debian's own image with apt.
FROM debian:bookworm-slim AS debian
RUN apt-get update && apt-get install -y --no-install-recommends python3-minimal tzdata && \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*

# Private, with a pull secret: one layer of tzdata's files.
FROM debian:bookworm-slim AS tzdata-source
RUN apt-get update && apt-get install -y --no-install-recommends tzdata
FROM scratch AS zoneinfo
COPY --from=tzdata-source /usr/share/zoneinfo /usr/share/zoneinfo
