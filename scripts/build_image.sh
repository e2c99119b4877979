#!/usr/bin/env bash
# Builds the pipeline image (Dockerfile) with the local container engine (scripts/container_engine.sh).
#
#   scripts/build_image.sh [TAG]                       # default TAG: dcgan-faces-pipeline:dev
#   BASE_IMAGE=python:3.10.13-slim-bookworm scripts/build_image.sh   # a public base, where a registry is reachable
#
# Without BASE_IMAGE the base is made here, because no image registry is reachable from these machines: a debootstrap
# of Debian 12 (bookworm, the release the lock was resolved and tested on) with the runtime libraries CPython needs,
# plus a CPython 3.10 copied in, imported with `docker import` as dcgan-base:bookworm-py<version>. No Debian release
# ships Python 3.10 (bullseye 3.9, bookworm 3.11, trixie 3.13) and python.org is not reachable, so the interpreter
# is the one this project already runs on: pyenv's 3.10 build ($DCGAN_PYTHON or `pyenv prefix 3.10.*`), built on
# this same Debian 12 — the same glibc and libraries the root provides (checked with ldd below). It lands in
# /usr/local like the official python images' does. The root and the base image are cached between runs on one
# machine (/var/cache/dcgan/, the engine's data root); CI's fresh clone still reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-dcgan-faces-pipeline:dev}
CACHE=${DCGAN_IMAGE_CACHE:-/var/cache/dcgan}
DOCKER=$(scripts/container_engine.sh start)
export DOCKER_HOST=unix://${DCGAN_DOCKER_STATE:-/run/dcgan-docker}/docker.sock

# The shared libraries CPython's own modules link (ssl, ctypes, sqlite3, readline, curses, lzma, bz2, zlib, uuid,
# dbm) plus libstdc++/libgomp for TensorFlow's and NumPy's wheels. tkinter's Tcl/Tk is left out (nothing imports it).
ROOT_PACKAGES=ca-certificates,libssl3,libffi8,libsqlite3-0,libncursesw6,libreadline8,liblzma5,libbz2-1.0,zlib1g,libuuid1,libgdbm6,libgdbm-compat4,libnsl2,libexpat1,libstdc++6,libgcc-s1,libgomp1,netbase,tzdata

find_python_prefix() {
  if [ -n "${DCGAN_PYTHON:-}" ]; then
    "$DCGAN_PYTHON" -c 'import sys; print(sys.prefix)'
    return
  fi
  local v
  v=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10\.[0-9]+$' | sort -V | tail -1)
  [ -n "$v" ] || { echo "build_image: no Python 3.10 (set DCGAN_PYTHON or BASE_IMAGE)" >&2; exit 1; }
  pyenv prefix "$v"
}

local_base() {
  local prefix version image root
  prefix=$(find_python_prefix)
  version=$("$prefix/bin/python3" -c 'import platform; print(platform.python_version())')
  image="dcgan-base:bookworm-py$version"
  if "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
    echo "$image"
    return
  fi
  root="$CACHE/bookworm-py$version-root"
  scripts/debian_root.sh bookworm "$root" "$ROOT_PACKAGES" >&2
  if [ ! -x "$root/usr/local/bin/python3.10" ]; then
    echo "build_image: copying Python $version from $prefix into the root's /usr/local" >&2
    local stage="$root/usr/local.partial"
    rm -rf "$stage" && mkdir -p "$stage"
    # The interpreter, its stdlib and pip/setuptools; not its test suite, not anything else installed into it.
    tar -C "$prefix" -c --exclude='lib/python3.10/test' --exclude='*/__pycache__' \
      --exclude='lib/python3.10/site-packages/*.pth' --exclude='lib/python3.10/site-packages/*' \
      bin include lib share 2>/dev/null | tar -C "$stage" -x
    for d in pip setuptools pkg_resources _distutils_hack "pip-"*.dist-info "setuptools-"*.dist-info; do
      for src in "$prefix"/lib/python3.10/site-packages/$d; do
        [ -e "$src" ] && cp -a "$src" "$stage/lib/python3.10/site-packages/"
      done
    done
    cp -a "$prefix/lib/python3.10/site-packages/distutils-precedence.pth" "$stage/lib/python3.10/site-packages/" \
      2>/dev/null || true
    # Console scripts name the old prefix in their #! line.
    grep -rlI "^#!$prefix/bin/python" "$stage/bin" | xargs -r sed -i "1s|^#!$prefix/bin/|#!/usr/local/bin/|"
    cp -a "$stage/." "$root/usr/local/" && rm -rf "$stage"
    ldconfig -r "$root"   # /usr/local/lib (libpython3.10.so) is on bookworm's library path
  fi
  # Every shared object of the interpreter resolves inside the root (tkinter excepted: no Tcl/Tk there).
  local missing
  missing=$(chroot "$root" /bin/sh -c 'for f in /usr/local/bin/python3.10 /usr/local/lib/python3.10/lib-dynload/*.so; do
      case $f in *_tkinter*) continue;; esac; ldd "$f" | grep "not found" | sed "s|^|$f: |"; done' || true)
  if [ -n "$missing" ]; then
    echo "build_image: libraries missing from the base root:" >&2
    echo "$missing" >&2
    exit 1
  fi
  chroot "$root" /usr/local/bin/python3 -c 'import ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, venv, pip' >&2
  echo "build_image: importing $root as $image" >&2
  tar -C "$root" --exclude=./.dcgan-root -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' - "$image" >/dev/null
  echo "$image"
}

start=$(date +%s)
BASE=${BASE_IMAGE:-$(local_base)}
echo "build_image: building $TAG on $BASE" >&2
# --network host: the build reaches PyPI like the host does (no bridge network here).
DOCKER_BUILDKIT=0 "$DOCKER" build --network host --build-arg "BASE_IMAGE=$BASE" -t "$TAG" . >&2
echo "build_image: $TAG built in $(( $(date +%s) - start )) s" >&2
echo "$TAG"
