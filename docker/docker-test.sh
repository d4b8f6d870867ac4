#!/usr/bin/env bash
# `make docker-test`: builds rs-ssl:local-cpu with docker/build-local.sh and runs it as a user
# would, on the CPU, with no network:
#   - `rs-ssl --help`;
#   - `rs-ssl pretrain --bands 13 --max-steps 2 --batch-size 4` on the embedded sample, with
#     `--read-only --tmpfs /tmp` and a mounted /runs: the outputs must appear on the host, owned
#     by the image's uid 10001;
#   - `rs-ssl manifest` on a real sample mounted read-only (../shared/data/s2_tile_folder);
#   - the image holds no compiler, no pip or apt cache and no copy of the sources or tests.
# Every container runs with `--network none`, so a run that tried to download anything fails.
# Exits 0 when all pass, 1 with a "docker-test: FAIL:" line on the first failure, and 0 after one
# "docker-test: SKIP:" line when no docker daemon can be reached or started (DOCKER_TEST_REQUIRED=1
# makes that a failure).
#
# Environment (all optional): RS_SSL_IMAGE (default rs-ssl:local-cpu), RS_SSL_SHARED_DATA (the
# folder of real samples, default ../shared/data beside the checkout), DOCKER_TEST_BUILD=0 (test
# an image already built), and build-local.sh's variables.
set -euo pipefail

say() { echo "docker-test: $*"; }
fail() {
    echo "docker-test: FAIL: $*" >&2
    exit 1
}
skip() {
    [[ "${DOCKER_TEST_REQUIRED:-0}" == 0 ]] || fail "$* (DOCKER_TEST_REQUIRED=1)"
    echo "docker-test: SKIP: $*"
    exit 0
}

root="$(cd "$(dirname "$0")/.." && pwd)"
image="${RS_SSL_IMAGE:-rs-ssl:local-cpu}"
shared="${RS_SSL_SHARED_DATA:-$root/../shared/data}"
sample="$shared/s2_tile_folder"
[[ -d "$sample" ]] || fail "real sample folder $sample not found; set RS_SSL_SHARED_DATA to the folder of real samples"
sample="$(cd "$sample" && pwd)"

# --- a docker daemon: the running one, or one started here (and stopped at the end) -----------
command -v docker >/dev/null 2>&1 || skip "no docker command (apt-get install docker.io)"
dockerd_pid=""
work=""
cleanup() {
    local rc=$?
    [[ -z "$work" ]] || rm -rf "$work"
    if [[ -n "$dockerd_pid" ]]; then
        kill "$dockerd_pid" 2>/dev/null || true
        wait "$dockerd_pid" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null 2>&1 || skip "no docker daemon answers and dockerd is not installed"
    [[ "$(id -u)" == 0 ]] || skip "no docker daemon answers and starting dockerd needs root"
    log="${TMPDIR:-/tmp}/rs-ssl-dockerd.log"
    say "starting dockerd (log: $log)"
    dockerd >"$log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { dockerd_pid=""; skip "dockerd did not start: $(tail -n 1 "$log")"; }
        sleep 1
    done
    docker info >/dev/null 2>&1 || skip "dockerd did not answer within 60 s (log: $log)"
fi

t0=$SECONDS
if [[ "${DOCKER_TEST_BUILD:-1}" != 0 ]]; then
    bash "$root/docker/build-local.sh" --prune || fail "docker/build-local.sh failed"
fi
t_build=$((SECONDS - t0))
docker image inspect "$image" >/dev/null 2>&1 || fail "no image $image; run docker/build-local.sh"

run() { docker run --rm --network none "$@"; }

# --- 1. --help ---------------------------------------------------------------------------------
help="$(run "$image" --help 2>&1)" || fail "rs-ssl --help failed in $image: $help"
for cmd in pretrain probe finetune manifest; do
    grep -q "$cmd" <<<"$help" || fail "rs-ssl --help in $image does not list the command $cmd"
done
say "rs-ssl --help lists pretrain, probe, finetune, manifest"

# --- 2. pretrain on the embedded sample, read-only root, as uid 10001 ----------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/rs-ssl-docker-test.XXXXXX")"
mkdir -p "$work/runs"
# The image's user must be able to write the mounted folder; as root here, hand it over, as a
# user in the docker group, open it (docker's uid 10001 is nobody on the host).
chown 10001:10001 "$work/runs" 2>/dev/null || chmod 0777 "$work/runs"
t1=$SECONDS
if ! run --read-only --tmpfs /tmp -v "$work/runs":/runs "$image" \
    pretrain --bands 13 --max-steps 2 --batch-size 4 --out /runs/run >"$work/pretrain.log" 2>&1; then
    tail -n 30 "$work/pretrain.log" >&2
    fail "rs-ssl pretrain failed in the container (log above)"
fi
t_pretrain=$((SECONDS - t1))
for f in checkpoints/last.ckpt backbone.safetensors metrics.json config.yaml loss.png; do
    [[ -s "$work/runs/run/$f" ]] || fail "pretrain did not write $f into the mounted /runs/run"
done
others="$(find "$work/runs/run" ! -uid 10001 -printf '%P (uid %U)\n')"
[[ -z "$others" ]] || fail "files in /runs/run not owned by uid 10001: $others"
python3 - "$work/runs/run/metrics.json" <<'EOF' || fail "metrics.json of the container run is not as expected"
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))
steps = m.get("steps", m.get("global_step"))
print("docker-test: metrics.json keys:", ", ".join(sorted(m)))
if steps is not None and int(steps) != 2:
    sys.exit(f"metrics.json records {steps} steps, expected 2")
EOF
say "pretrain (--read-only --tmpfs /tmp, --network none) wrote checkpoints/last.ckpt, backbone.safetensors, metrics.json, config.yaml, loss.png, all owned by uid 10001, in ${t_pretrain} s"

# --- 3. manifest of a real sample, mounted read-only --------------------------------------------
if ! run --read-only --tmpfs /tmp -v "$sample":/data:ro -v "$work/runs":/runs "$image" \
    manifest /data --bands 12 --out /runs/manifest >"$work/manifest.log" 2>&1; then
    tail -n 30 "$work/manifest.log" >&2
    fail "rs-ssl manifest failed in the container (log above)"
fi
want="$(find "$sample" -maxdepth 1 -name '*.tif' | wc -l)"
python3 - "$work/runs/manifest/summary.json" "$want" <<'EOF' || fail "the container's manifest of $sample is wrong"
import json, sys
s = json.load(open(sys.argv[1], encoding="utf-8"))
if s.get("count") != int(sys.argv[2]) or len(s.get("bands", [])) != 12 or s.get("problems"):
    sys.exit(f"summary.json: count {s.get('count')} (expected {sys.argv[2]}), bands {s.get('bands')}, problems {s.get('problems')}")
EOF
[[ -s "$work/runs/manifest/manifest.parquet" ]] || fail "manifest did not write manifest.parquet"
say "manifest of $sample (read-only): $want items, 12 bands, manifest.parquet owned by uid $(stat -c %u "$work/runs/manifest/manifest.parquet")"

# --- 4. what the image holds -----------------------------------------------------------------------
# shellcheck disable=SC2016  # a script for the container's shell, expanded there
lean='
set -u
bad=""
for tool in gcc cc c++ g++ make; do command -v "$tool" >/dev/null && bad="$bad compiler:$tool"; done
for d in /root/.cache /home/rsssl/.cache /src /wheels; do [ -e "$d" ] && bad="$bad $d"; done
ls /var/cache/apt/archives/*.deb >/dev/null 2>&1 && bad="$bad apt-archives"
[ -n "$(ls -A /var/lib/apt/lists 2>/dev/null)" ] && bad="$bad apt-lists"
[ -n "$(ls -A /opt/torch)" ] && bad="$bad /opt/torch-not-empty"
site=$(echo /opt/venv/lib/python3*/site-packages)
[ -e "$site/tests" ] && bad="$bad site-packages/tests"
[ "$(id -u)" = 10001 ] || bad="$bad uid:$(id -u)"
echo "${bad:-ok}"
'
verdict="$(run --entrypoint /bin/sh "$image" -c "$lean")" || fail "cannot inspect $image: $verdict"
[[ "$verdict" == ok ]] || fail "the image holds what it should not:$verdict"
size="$(docker image inspect -f '{{.Size}}' "$image")"
say "image runs as uid 10001 and holds no compiler, pip/apt cache, /src or tests; size $(awk -v b="$size" 'BEGIN { printf "%.2f GB", b / 1e9 }')"
say "OK (build ${t_build} s, checks $((SECONDS - t0 - t_build)) s)"
