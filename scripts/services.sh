#!/usr/bin/env bash
# System services the integration tests use: Redis (shared rate limits across gateway
# processes) and headless Chromium with its driver (the review page). Installs only what is
# missing; tests that need a missing one skip and say why.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "services: missing ${need[*]}; their integration tests will skip" >&2
  exit 0
fi
echo "services: installing ${need[*]}" >&2
apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
