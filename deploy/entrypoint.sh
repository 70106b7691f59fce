#!/bin/sh
# Container entrypoint. Runs the serving commands (serve, align, rectify; default: serve) with
# `exec`, so SIGTERM from `docker stop` reaches the server, which then drains (health NOT_SERVING,
# calls in flight finish). Anything that is not a serving command is run as given (e.g. sh).
#
# Before starting it checks what the container promises: not running as root (override with
# STN_ALLOW_ROOT=1), the model directory present and not writable (mount it read-only), and it
# reads the shared token from STN_AUTH_TOKEN_FILE (a Docker secret) when that is set.
set -eu

python="${STN_PYTHON:-python}"
model_dir="${STN_MODEL_DIR:-exported}"

if [ "$#" -eq 0 ]; then
    set -- serve
fi

case "$1" in
    serve|align|rectify) ;;
    *) exec "$@" ;;
esac

if [ "$(id -u)" = "0" ] && [ "${STN_ALLOW_ROOT:-0}" != "1" ]; then
    echo "entrypoint: refusing to run as root; run as a non-root user (the image's default) or set STN_ALLOW_ROOT=1" >&2
    exit 64
fi

if [ -n "${STN_AUTH_TOKEN_FILE:-}" ]; then
    if [ ! -r "$STN_AUTH_TOKEN_FILE" ]; then
        echo "entrypoint: setting auth_token_file (STN_AUTH_TOKEN_FILE): cannot read $STN_AUTH_TOKEN_FILE" >&2
        exit 64
    fi
    STN_AUTH_TOKEN="$(tr -d '\r\n' < "$STN_AUTH_TOKEN_FILE")"
    export STN_AUTH_TOKEN
fi

if [ "$1" = "serve" ]; then
    if [ ! -d "$model_dir" ]; then
        echo "entrypoint: setting model_dir (STN_MODEL_DIR): $model_dir is not a directory; mount the exported models there" >&2
        exit 64
    fi
    if [ -w "$model_dir" ]; then
        echo "entrypoint: warning: $model_dir is writable; mount it read-only" >&2
    fi
fi

exec "$python" -m stn_align.service.commands "$@"
