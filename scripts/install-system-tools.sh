#!/usr/bin/env bash
# Installs the Debian packages that Breakwater's tests and benchmarks drive:
#   prometheus (for promtool), wrk, nginx, haproxy, procps (ps), util-linux (taskset),
#   kubernetes-client (kubectl, for `kubectl kustomize`) and redis-server with redis-tools
#   (redis-server and redis-cli, for the Redis state store's tests: one server, a cluster,
#   a sentinel).
# Idempotent: packages already installed are skipped, and when all are present it runs no apt
# at all. Installing never leaves a system service running: a temporary policy-rc.d refuses
# service starts during the install, so nginx, prometheus or redis do not grab ports on the machine.
# Usage: bash scripts/install-system-tools.sh   (as root, or with passwordless sudo)
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# package -> command that the tests and benchmarks run from it
declare -A command_of=(
  [prometheus]=promtool
  [wrk]=wrk
  [nginx]=nginx
  [haproxy]=haproxy
  [procps]=ps
  [util-linux]=taskset
  [kubernetes-client]=kubectl
  [redis-server]=redis-server
  [redis-tools]=redis-cli
)
packages=(prometheus wrk nginx haproxy procps util-linux kubernetes-client redis-server redis-tools)
# Packages whose command may come from elsewhere: a machine that already has a kubectl (from
# Kubernetes' own `kubectl` package, say) keeps it, since Debian's package would clash with it.
declare -A any_source_will_do=([kubernetes-client]=1)

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
  "${as_root[@]}" apt-get "${apt_options[@]}" install -y -qq --no-install-recommends "${missing[@]}"

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
found=()
for package in "${packages[@]}"; do
  path=$(command -v "${command_of[$package]}" || true)
  if [[ -z "$path" ]]; then
    echo "install-system-tools: ${command_of[$package]} (package $package) is not on PATH" >&2
    status=1
  else
    found+=("$path")
  fi
done
echo "install-system-tools: ${found[*]}"
exit "$status"
