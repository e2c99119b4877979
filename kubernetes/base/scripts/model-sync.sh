#!/bin/sh
# Mirror a model folder of an object store into a local folder that TF Serving or the studio reads (overlays/s3: TF
# Serving has no s3:// filesystem since 2.7; overlays/gcs: the studio reads local files only). Runs in the rclone
# image (rclone, busybox sh); the remote comes from rclone's environment (RCLONE_S3_* / RCLONE_GCS_*).
#
# A version is never visible half-copied: it is copied into $DEST/../.incoming/<version> and renamed into
# $DEST/<version> (one rename on the same volume) only once its saved_model.pb is there. The project's writers
# (dcgan export, fileio.upload_tree) upload saved_model.pb last, so its presence means the version is complete.
# Versions deleted from the store are deleted here. With CONFIG_SOURCE set, the model config file is mirrored too
# (written beside, then renamed over CONFIG_DEST) with the store's base path (BASE_PATH_FROM, e.g. s3://bucket/dcgan)
# rewritten to $DEST, so `dcgan rollout --config s3://.../models.config` moves the labels of every pod.
#
# usage: model-sync.sh once | wait | loop | wait-remote
#   once         one round; exit status 1 when the store could not be read
#   wait         rounds until a complete version (and the config file, with CONFIG_SOURCE) is here: an init container
#   loop         a round every $INTERVAL seconds, forever: a sidecar
#   wait-remote  copy nothing; return once the store itself holds a complete version (and CONFIG_SOURCE): the init
#                container of a server that reads the store directly (TF Serving on gs://)
# env: SOURCE (required, e.g. :s3:models/dcgan), DEST (required, e.g. /models/dcgan), INTERVAL (30),
#      CONFIG_SOURCE, CONFIG_DEST (/models/models.config), BASE_PATH_FROM
set -u
: "${SOURCE:?SOURCE (the rclone path of the model folder) is required}"
: "${DEST:?DEST (the local model folder) is required}"
INTERVAL=${INTERVAL:-30}
CONFIG_DEST=${CONFIG_DEST:-$(dirname "$DEST")/models.config}
INCOMING="$(dirname "$DEST")/.incoming"
log() { echo "model-sync: $*"; }

sync_versions() {
  mkdir -p "$DEST" "$INCOMING" || return 1
  listing=$(rclone lsf --dirs-only "$SOURCE/") || { log "cannot list $SOURCE (kept what is here)"; return 1; }
  for entry in $listing; do
    version=${entry%/}
    case "$version" in ''|*[!0-9]*) continue ;; esac
    [ -d "$DEST/$version" ] && continue
    rm -rf "${INCOMING:?}/$version"
    if rclone copy "$SOURCE/$version" "$INCOMING/$version" && [ -f "$INCOMING/$version/saved_model.pb" ]; then
      mv "$INCOMING/$version" "$DEST/$version" && log "version $version ready in $DEST"
    else
      rm -rf "${INCOMING:?}/$version"
      log "version $version is not complete in the store yet (no saved_model.pb); next round"
    fi
  done
  for dir in "$DEST"/*; do
    [ -d "$dir" ] || continue
    version=$(basename "$dir")
    if ! printf '%s\n' "$listing" | grep -qx "$version/"; then
      rm -rf "$dir" && log "version $version removed (deleted from the store)"
    fi
  done
}

sync_config() {
  [ -n "${CONFIG_SOURCE:-}" ] || return 0
  rclone copyto "$CONFIG_SOURCE" "$INCOMING/models.config.remote" || { log "cannot read $CONFIG_SOURCE"; return 1; }
  sed "s#${BASE_PATH_FROM:-//}#$DEST#g" "$INCOMING/models.config.remote" > "$INCOMING/models.config" || return 1
  if ! cmp -s "$INCOMING/models.config" "$CONFIG_DEST"; then
    mv "$INCOMING/models.config" "$CONFIG_DEST" && log "model config updated from $CONFIG_SOURCE"
  fi
}

ready() {
  for dir in "$DEST"/*; do
    if [ -f "$dir/saved_model.pb" ]; then
      [ -z "${CONFIG_SOURCE:-}" ] || [ -f "$CONFIG_DEST" ]
      return
    fi
  done
  return 1
}

remote_ready() {
  listing=$(rclone lsf --dirs-only "$SOURCE/") || { log "cannot list $SOURCE"; return 1; }
  found=""
  for entry in $listing; do
    version=${entry%/}
    case "$version" in ''|*[!0-9]*) continue ;; esac
    if rclone lsf "$SOURCE/$version/saved_model.pb" 2>/dev/null | grep -q .; then found=$version; fi
  done
  [ -n "$found" ] || return 1
  [ -z "${CONFIG_SOURCE:-}" ] || rclone lsf "$CONFIG_SOURCE" 2>/dev/null | grep -q . || return 1
  log "version $found is complete in the store"
}

round() {
  status=0
  sync_versions || status=1
  sync_config || status=1
  return $status
}

case "${1:-loop}" in
  once) round ;;
  wait)
    until round && ready; do
      log "waiting for a complete version under $SOURCE${CONFIG_SOURCE:+ and $CONFIG_SOURCE} (every ${INTERVAL}s)"
      sleep "$INTERVAL"
    done
    log "ready" ;;
  loop)
    while true; do round; sleep "$INTERVAL"; done ;;
  wait-remote)
    until remote_ready; do
      log "waiting for a complete version under $SOURCE${CONFIG_SOURCE:+ and $CONFIG_SOURCE} (every ${INTERVAL}s)"
      sleep "$INTERVAL"
    done ;;
  *) echo "usage: model-sync.sh once|wait|loop|wait-remote" >&2; exit 2 ;;
esac
