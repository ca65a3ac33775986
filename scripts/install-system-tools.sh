#!/usr/bin/env bash
# Installs the Debian packages that one use of the project needs, and nothing more:
#   test   what `npm test` drives: prometheus (promtool, and prometheus itself for the scrape
#          test), kubernetes-client (kubectl, for `kubectl kustomize`), and redis-server with
#          redis-tools (redis-server and redis-cli, for the Redis state store's tests: one
#          server, a cluster, a sentinel), chromium (the headless browser that the admin
#          page's test drives through playwright-core), and curl (the README tour's commands,
#          which a test runs as written)
#   bench  what `npm run bench` and `npm run bench:resilience` drive: wrk, nginx, haproxy,
#          nghttp2-client (h2load, the gRPC rows' load), procps (ps) and util-linux (taskset)
# `npm test` and `npm run bench` run it with their set; call it by hand only to prepare a
# machine ahead of time.
# Idempotent and quiet: packages already installed are skipped, and when all are present it
# runs no apt and prints nothing. Installing never leaves a system service running: a
# temporary policy-rc.d refuses service starts during the install, so nginx, prometheus or
# redis do not grab ports on the machine: the tests start their own servers on free ports.
# Usage: bash scripts/install-system-tools.sh SET...   (as root, or with passwordless sudo)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# The packages of each set; each package's command is listed below.
declare -A packages_of=(
  [test]="prometheus kubernetes-client redis-server redis-tools chromium curl"
  [bench]="wrk nginx haproxy nghttp2-client procps util-linux"
)
# package -> the command that the tests and benchmarks run from it
declare -A command_of=(
  [prometheus]=promtool
  [kubernetes-client]=kubectl
  [redis-server]=redis-server
  [redis-tools]=redis-cli
  [chromium]=chromium
  [curl]=curl
  [wrk]=wrk
  [nginx]=nginx
  [haproxy]=haproxy
  [nghttp2-client]=h2load
  [procps]=ps
  [util-linux]=taskset
)
# Packages whose command may come from elsewhere: a machine that already has a kubectl (from
# Kubernetes' own `kubectl` package, say) keeps it, since Debian's package would clash with it.
declare -A any_source_will_do=([kubernetes-client]=1)

if (($# == 0)); then
  echo "usage: bash scripts/install-system-tools.sh SET...   (sets: ${!packages_of[*]})" >&2
  exit 2
fi
packages=()
for set in "$@"; do
  if [[ -z "${packages_of[$set]:-}" ]]; then
    echo "install-system-tools: unknown set \"$set\" (sets: ${!packages_of[*]})" >&2
    exit 2
  fi
  read -r -a listed <<<"${packages_of[$set]}"
  packages+=("${listed[@]}")
done

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for package in "${packages[@]}"; do
  if ! command -v "${command_of[$package]}" >/dev/null; then
    missing+=("$package")
  elif [[ -z "${any_source_will_do[$package]:-}" ]] && ! is_installed "$package"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  as_root=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
      echo "install-system-tools: must run as root to install: ${missing[*]}" >&2
      exit 1
    fi
    as_root=(sudo --preserve-env=DEBIAN_FRONTEND)
  fi

  # Refuse service starts while packages install (exit 101 = "action forbidden"), unless the
  # machine already has its own policy, which is then left as it is.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    "${as_root[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap '"${as_root[@]}" rm -f "$policy"' EXIT
  fi

  echo "install-system-tools: installing ${missing[*]}"
  # Wait for a dpkg lock held by another apt run rather than failing at once.
  apt_options=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  "${as_root[@]}" apt-get "${apt_options[@]}" update -qq
  "${as_root[@]}" apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

  # On a systemd machine a unit may still have been started by other means: stop the services
  # of the packages installed just now, so that none keeps running or holding ports.
  if [[ -d /run/systemd/system ]]; then
    for package in "${missing[@]}"; do
      case "$package" in
        nginx | haproxy | prometheus | redis-server)
          "${as_root[@]}" systemctl stop "$package" 2>/dev/null || true
          ;;
      esac
    done
  fi
fi

status=0
for package in "${packages[@]}"; do
  if ! command -v "${command_of[$package]}" >/dev/null; then
    echo "install-system-tools: ${command_of[$package]} (package $package) is not on PATH" >&2
    status=1
  fi
done
if ((${#missing[@]} > 0 && status == 0)); then
  echo "install-system-tools: installed ${missing[*]}"
fi
exit "$status"
