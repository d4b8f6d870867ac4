#!/usr/bin/env bash
# Builds the image rs-ssl:local-cpu from this checkout where no container registry is reachable:
#   1. a Debian 12 (bookworm) base made with debootstrap and `docker import` (kept as a tarball in
#      the cache folder, so a later run, or a fresh docker daemon, skips the bootstrap);
#   2. a folder of wheels for pyproject.toml's dependencies and the Dockerfile's torch pins,
#      assembled by the host's pip (with its own indexes and CA settings) and kept in the cache;
#   3. docker/Dockerfile built on that base with pip reading only that folder, served over HTTP
#      on the docker bridge, so the build downloads nothing and the wheels land in no layer.
# torch comes from the same wheels the host's pip installs (PyPI's torch for Linux is the CUDA
# build, and no CPU torchvision is published on PyPI), so the image is built as VARIANT=gpu: the
# CUDA 13.0 torch with its nvidia-* wheels, on a plain Debian base. It runs on the CPU here; with
# `--gpus all` on a GPU machine it is the GPU image on a Debian base.
#
#   bash docker/build-local.sh [--prune]      (as root or a docker-group member; dockerd running)
#
# --prune removes the daemon's dangling images and build cache afterwards (the build stage holds
# a second copy of the ~6 GB virtual environment); the next build then starts from the base.
#
# Environment (all optional):
#   RS_SSL_IMAGE         tag to build                       (default: rs-ssl:local-cpu)
#   RS_SSL_BASE          tag of the Debian base image       (default: rs-ssl-base:bookworm)
#   RS_SSL_DOCKER_CACHE  base tarball and wheel folders     (default: ${XDG_CACHE_HOME:-~/.cache}/rs-ssl-docker)
#   DEBIAN_MIRROR        mirror for debootstrap             (default: the one apt uses here, else deb.debian.org)
#   RS_SSL_WHEEL_PYTHON  interpreter whose pip gets wheels  (default: .venv/bin/python, else python3)
#   RS_SSL_WHEEL_PORT    port of the wheel server           (default: 38719)
#   DOCKER_BUILDKIT      0 (classic builder) or 1 (BuildKit); both build this file
set -euo pipefail

say() { echo "build-local: $*"; }
fail() {
    echo "build-local: FAIL: $*" >&2
    exit 1
}

root="$(cd "$(dirname "$0")/.." && pwd)"
image="${RS_SSL_IMAGE:-rs-ssl:local-cpu}"
base="${RS_SSL_BASE:-rs-ssl-base:bookworm}"
cache="${RS_SSL_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rs-ssl-docker}"
prune=0
for arg in "$@"; do
    case "$arg" in
        --prune) prune=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *) fail "unknown argument $arg (expected --prune or --help)" ;;
    esac
done
mkdir -p "$cache" || fail "cannot create the cache folder $cache; set RS_SSL_DOCKER_CACHE"
docker info >/dev/null 2>&1 || fail "no docker daemon answers (\`docker info\` fails); start dockerd, or run docker/docker-test.sh, which starts it"

# --- 1. the Debian base image --------------------------------------------------------------------
debian_mirror() {
    # The first Debian archive that apt's sources name for the suite bookworm (one-line .list
    # entries and deb822 .sources stanzas); deb.debian.org when there is none.
    python3 - <<'EOF'
import glob, re
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            f = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "bookworm" in f.get("Suites", "").split() and "deb" in f.get("Types", "").split():
                print(f["URIs"].split()[0]); raise SystemExit
    elif path.endswith(".list"):
        for line in text.splitlines():
            w = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(w) >= 3 and w[0] == "deb" and w[2] == "bookworm":
                print(w[1]); raise SystemExit
print("http://deb.debian.org/debian")
EOF
}

tarball="$cache/base-bookworm.tar"
if docker image inspect "$base" >/dev/null 2>&1; then
    say "base image $base present"
else
    if [[ ! -s "$tarball" ]]; then
        command -v debootstrap >/dev/null 2>&1 \
            || fail "debootstrap not found; \`apt-get install debootstrap\` (or load a base image tagged $base)"
        [[ "$(id -u)" == 0 ]] || fail "debootstrap needs root to make the base image $base"
        mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
        rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
        trap 'rm -rf "$rootfs"' EXIT
        say "debootstrap --variant=minbase bookworm from $mirror"
        start=$SECONDS
        # passwd: useradd/groupadd, which the Dockerfile runs and the Ubuntu base images carry.
        debootstrap --variant=minbase --include=passwd bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
            || fail "debootstrap failed (log: $cache/debootstrap.log)"
        security="${mirror%/debian}/debian-security"
        [[ "$security" != "$mirror/debian-security" ]] || security="http://deb.debian.org/debian-security"
        # Point release and security updates too, so that `apt-get install` in the image gets
        # the patched packages, as it does on the official Debian and Ubuntu images.
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
            "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
        # As the official images: no package caches, lists, documentation, man pages or locales.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
            'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' \
            >"$rootfs/etc/dpkg/dpkg.cfg.d/01-rs-ssl-slim"
        # apt deletes the packages it downloaded after each install, as in the official images
        # (their /etc/apt/apt.conf.d/docker-clean), so `apt-get install` leaves no .deb behind.
        cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
        echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
        tar --numeric-owner -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
        rm -rf "$rootfs"
        trap - EXIT
        say "base tarball $tarball made in $((SECONDS - start)) s"
    fi
    say "docker import $tarball as $base"
    docker import "$tarball" "$base" >/dev/null
fi

# --- 2. the wheel folder ---------------------------------------------------------------------------
# The torch pins are the Dockerfile's own defaults (one definition of them).
pin() { sed -n "s/^ARG $1=//p" "$root/docker/Dockerfile"; }
torch_version="$(pin TORCH_VERSION)"
torchvision_version="$(pin TORCHVISION_VERSION)"
[[ -n "$torch_version" && -n "$torchvision_version" ]] || fail "no ARG TORCH_VERSION/TORCHVISION_VERSION in docker/Dockerfile"
wheel_python="${RS_SSL_WHEEL_PYTHON:-}"
if [[ -z "$wheel_python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then wheel_python="$root/.venv/bin/python"; else wheel_python="python3"; fi
fi
# The image gets the versions that the checkout's virtual environment (where the tests ran)
# resolved, as constraints; they also spare pip a long backtracking over torchgeo's extras.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
"$wheel_python" -m pip freeze --exclude-editable 2>/dev/null | grep -v '^-e ' >"$constraints" || true
key="$( (cat "$root/pyproject.toml" "$constraints"; echo "$torch_version $torchvision_version") | sha256sum | cut -c1-16)"
wheels="$cache/wheels-$key"
if [[ -d "$wheels" ]]; then
    say "wheel folder $wheels present"
else
    say "assembling wheels for torch==$torch_version torchvision==$torchvision_version and pyproject.toml with $wheel_python"
    start=$SECONDS
    part="$wheels.part"
    rm -rf "$part"
    # `pip wheel` turns the few sdist-only dependencies (antlr4-python3-runtime) into wheels here,
    # so the image needs no compiler; setuptools and wheel are pyproject's build requirements.
    "$wheel_python" -m pip wheel -q -w "$part" -c "$constraints" \
        "torch==$torch_version" "torchvision==$torchvision_version" "$root" >"$cache/wheels.log" 2>&1 \
        || fail "pip wheel failed (log: $cache/wheels.log)"
    "$wheel_python" -m pip download -q -d "$part" --only-binary=:all: "setuptools>=68" wheel >>"$cache/wheels.log" 2>&1 \
        || fail "pip download of the build requirements failed (log: $cache/wheels.log)"
    rm -f "$part"/rs_ssl-*.whl # the image builds rs-ssl from the copied checkout
    find "$cache" -maxdepth 1 -name 'wheels-*' -not -name "wheels-$key*" -exec rm -rf {} + # older sets
    mv "$part" "$wheels"
    say "wheel folder $wheels ($(du -sh "$wheels" | cut -f1)) made in $((SECONDS - start)) s"
fi

# --- 3. serve the wheels on the docker bridge and build --------------------------------------------
# The build's containers reach the host at the gateway of docker's default bridge network (Docker
# 20.10 does not list it in the network's IPAM config: then the bridge interface's address).
bridge="$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)"
if [[ -z "$bridge" ]]; then
    bridge_if="$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)"
    bridge="$(ip -4 -o addr show "${bridge_if:-docker0}" 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')"
fi
[[ -n "$bridge" ]] || fail "cannot find the host's address on docker's bridge network (\`docker network inspect bridge\`, \`ip addr show docker0\`)"
# A fixed port: the address is a build argument, and a new one each time would defeat the layer cache.
wheel_port="${RS_SSL_WHEEL_PORT:-38719}"
serve_log="$(mktemp)"
python3 -u -m http.server "$wheel_port" --bind "$bridge" --directory "$wheels" >"$serve_log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$constraints" "$serve_log"' EXIT
port=""
for _ in $(seq 50); do
    port="$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$serve_log" | head -n 1)"
    [[ -n "$port" ]] && break
    kill -0 "$server" 2>/dev/null || fail "the wheel server did not start on $bridge:$wheel_port: $(cat "$serve_log"); set RS_SSL_WHEEL_PORT to a free port"
    sleep 0.2
done
[[ -n "$port" ]] || fail "the wheel server did not start on $bridge:$wheel_port: $(cat "$serve_log"); set RS_SSL_WHEEL_PORT to a free port"

say "docker build -t $image (base $base, wheels from http://$bridge:$port/)"
start=$SECONDS
# Both base arguments: the classic builder builds every stage, also the one not used.
docker build -f "$root/docker/Dockerfile" -t "$image" \
    --build-arg VARIANT=gpu \
    --build-arg GPU_BASE="$base" --build-arg CPU_BASE="$base" --build-arg PYTHON=python3.11 \
    --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS="http://$bridge:$port/" \
    --build-arg PIP_TRUSTED_HOST="$bridge:$port" \
    "$root" || fail "docker build failed (output above)"
say "built $image in $((SECONDS - start)) s"
kill "$server" 2>/dev/null || true

if [[ $prune -eq 1 ]]; then
    docker image prune -f >/dev/null
    docker builder prune -f >/dev/null 2>&1 || true
    say "removed dangling images and build cache"
fi
size="$(docker image inspect -f '{{.Size}}' "$image")"
say "image $image: $(awk -v b="$size" 'BEGIN { printf "%.2f GB (%.0f bytes)", b / 1e9, b }')"
