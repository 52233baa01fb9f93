#!/usr/bin/env bash
# Installs everything clip-csi needs on a fresh Debian machine (run as root), then builds.
# System packages:
#   libfuse3-dev         headers and library of libfuse3, whose low-level API native/clip_fuse.c
#                        (the FUSE server of every mount) is built against
#   fuse3                fusermount3, to detach FUSE mounts (libfuse3 mounts by itself as root)
#   pkg-config           finds libfuse3's compiler and linker flags for node-gyp
#   attr                 getfattr, to read extended attributes when archiving a directory
#   docker-registry      the CNCF distribution registry the tests and benchmarks run on loopback
#   apache2-utils        htpasswd (bcrypt) for the registry's basic auth in tests
#   openssl              self-signed certificates for TLS and token-auth tests
#   zstd                 compresses zstd test layers
#   skopeo, umoci        the "pull and unpack the whole image" baseline in benchmarks
#   g++, make, python3   node-gyp, to build native/clip_zlib (zlib's inflate with Z_BLOCK and
#                        inflatePrime) against Node's own headers and zlib
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  libfuse3-dev fuse3 pkg-config attr docker-registry apache2-utils openssl zstd skopeo umoci ca-certificates g++ make python3 >/dev/null
npm ci --no-audit --no-fund
npm run build
