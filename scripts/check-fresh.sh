#!/usr/bin/env bash
# scripts/check-fresh.sh (npm run check:fresh) — prove that the README's set-up and test commands
# work on a NEW machine of this project's kind, not only on one where the packages are already
# installed.
#
# A fresh Debian 12 root is made once with debootstrap (cached outside the repo, used read-only);
# each check runs on a throwaway overlayfs layer over it, so every run starts pristine. The root
# holds what a new machine of this kind has before any project script runs and nothing else:
# minbase + git + ca-certificates, the image's policy-rc.d, its extra CA certificates, apt sources,
# ~/.npmrc and Go env file; Node.js 20 with npm (/usr/bin/node, /usr/lib/node_modules,
# /usr/include/node) and Go (/usr/local/go) are bind-mounted read-only from this machine at the same
# paths. No postgres, no daemons, no npm cache, no Go module cache, no ~/.cache/hastack.
# Inside it (chroot, in its own mount and PID namespaces: everything mounted or started there
# disappears when the check ends, whatever happens) and as root: a clone of the repo at --rev, then
# exactly the README's commands, `bash scripts/setup.sh` and `npm test`.
#
#   bash scripts/check-fresh.sh [--rev REV] [--suites "tests/unit tests/daemons tests/engine"]
#                               [--warm-go] [--probe-nspawn] [--dir DIR] [--out PREFIX] [--keep] [--rebuild-base]
#   --rev REV        commit to check (default HEAD of this repo; only committed work is seen)
#   --suites LIST    only these of tests/unit tests/daemons tests/engine tests/e2e (default: all,
#                    i.e. plain `npm test`); the others are passed to `npm test --` as
#                    --testPathIgnorePatterns, so the command is still `npm test`
#   --warm-go        serve Go module downloads from this machine's GOMODCACHE (read-only, as a
#                    file:// GOPROXY in front of the normal one); compiling still happens. Default: cold
#   --probe-nspawn   after set-up, try systemd-nspawn nested in the fresh root once (throwaway
#                    machine name, --private-network: never on the lab's bridge)
#   --dir DIR        where the clone goes inside the fresh root (default /root/hastack, where root's
#                    `git clone` lands; /root is mode 700 there as on the real machines)
#   --out PREFIX     result files PREFIX.json and PREFIX.md (default bench/fresh-check)
#   --keep           keep the run's overlay upper directory (for debugging)
#   --rebuild-base   make the debootstrap base again
# Environment: HASTACK_FRESH_CACHE (default /var/tmp/hastack-fresh), HASTACK_FRESH_MIRROR.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${HASTACK_FRESH_CACHE:-/var/tmp/hastack-fresh}
BASE=$CACHE/base
MIRROR=${HASTACK_FRESH_MIRROR:-http://deb.debian.org/debian}
ALL_SUITES=(tests/unit tests/daemons tests/engine tests/e2e)
CA_VARS=(NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE GIT_SSL_CAINFO REQUESTS_CA_BUNDLE
         http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY)

dir=/root/hastack rev=HEAD suites="" warm_go=0 probe=0 keep=0 rebuild=0 out=$REPO/bench/fresh-check
cmdline="bash scripts/check-fresh.sh"
for a in "$@"; do if [[ $a =~ [[:space:]] || -z $a ]]; then cmdline+=" \"$a\""; else cmdline+=" $a"; fi; done
while [[ $# -gt 0 ]]; do
  case $1 in
    --rev) rev=$2; shift 2 ;;
    --suites) suites=$2; shift 2 ;;
    --warm-go) warm_go=1; shift ;;
    --probe-nspawn) probe=1; shift ;;
    --out) out=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --rebuild-base) rebuild=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-fresh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $EUID -eq 0 ]] || { echo "check-fresh: must run as root (debootstrap, mounts, chroot)" >&2; exit 1; }
[[ $out == /* ]] || out=$PWD/$out
log() { echo "check-fresh: $*" >&2; }

sha=$(git -C "$REPO" rev-parse --verify "$rev^{commit}")
subject=$(git -C "$REPO" log -1 --format=%s "$sha")

# --suites → --testPathIgnorePatterns for the suites left out
test_args=()
if [[ -n $suites ]]; then
  for s in $suites; do
    [[ " ${ALL_SUITES[*]} " == *" ${s%/} "* ]] || { log "--suites: $s is not one of ${ALL_SUITES[*]}"; exit 2; }
  done
  for s in "${ALL_SUITES[@]}"; do
    [[ " $suites " == *" $s "* || " $suites " == *" $s/ "* ]] || test_args+=("--testPathIgnorePatterns=$s/")
  done
  [[ ${#test_args[@]} -eq 0 ]] || test_args=(-- "--testPathIgnorePatterns=/node_modules/" "${test_args[@]}")
fi
test_cmd="npm test${test_args[*]:+ ${test_args[*]}}"

# ---------------------------------------------------------------- the debootstrap base, once
mkdir -p "$CACHE"
base_built=false base_secs=0
build_base() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap on this machine"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 debootstrap >&2
  }
  local tmp=$CACHE/base.new t0; t0=$(date +%s)
  rm -rf "$tmp"
  log "debootstrap bookworm (minbase + git, ca-certificates) from $MIRROR into $BASE"
  debootstrap --variant=minbase --include=git,ca-certificates bookworm "$tmp" "$MIRROR" >&2
  # what a new machine of this kind has before any project script runs
  cp -a /usr/sbin/policy-rc.d "$tmp/usr/sbin/policy-rc.d"
  if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then  # the image's extra CAs (TLS egress)
    cp -a /usr/local/share/ca-certificates/. "$tmp/usr/local/share/ca-certificates/"
    chroot "$tmp" update-ca-certificates >/dev/null
  fi
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    cp /etc/apt/sources.list.d/debian.sources "$tmp/etc/apt/sources.list.d/"; rm -f "$tmp/etc/apt/sources.list"
  fi
  [[ -f /root/.npmrc ]] && cp /root/.npmrc "$tmp/root/.npmrc"
  [[ -f /root/.config/go/env ]] && { mkdir -p "$tmp/root/.config/go"; cp /root/.config/go/env "$tmp/root/.config/go/env"; }
  # mount points for Node.js 20 + npm and Go, bind-mounted read-only at run time
  install -m 755 /dev/null "$tmp/usr/bin/node"
  mkdir -p "$tmp/usr/lib/node_modules" "$tmp/usr/include/node" "$tmp/usr/local/go" "$tmp/mnt/origin" "$tmp/mnt/out" "$tmp/mnt/host-gomod"
  local l; for l in npm npx corepack; do
    [[ -L /usr/bin/$l ]] && ln -sfn "$(readlink /usr/bin/$l)" "$tmp/usr/bin/$l"
  done
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_Packages
  base_secs=$(( $(date +%s) - t0 ))
  printf 'debootstrap --variant=minbase --include=git,ca-certificates bookworm %s\nbuilt %s in %ss\n' \
    "$MIRROR" "$(date -u +%FT%TZ)" "$base_secs" > "$tmp/.hastack-fresh-base"
  rm -rf "$BASE.old"; [[ -d $BASE ]] && mv "$BASE" "$BASE.old"
  mv "$tmp" "$BASE"; rm -rf "$BASE.old"
  base_built=true
}
(
  flock 9
  if [[ $rebuild == 1 || ! -f $BASE/.hastack-fresh-base ]]; then build_base; echo "$base_built $base_secs" > "$CACHE/.last-build"
  else rm -f "$CACHE/.last-build"; fi
) 9>"$CACHE/.lock"
[[ -f $CACHE/.last-build ]] && read -r base_built base_secs < "$CACHE/.last-build"
rm -f "$CACHE/.last-build"

# ---------------------------------------------------------------- one pristine run
RUN=$(mktemp -d "$CACHE/run.XXXXXX")
mkdir -p "$RUN/upper" "$RUN/work" "$RUN/root" "$RUN/out"
LOG=$RUN/out/log
inner_pid=""
cleanup() {
  local rc=$?
  # the chroot lives in its own PID and mount namespaces: ending its init ends every process it
  # started and releases every mount it made. unshare ignores TERM while it waits, and a
  # namespace's init ignores signals it has no handler for, so the init gets SIGKILL.
  local c
  if [[ -n $inner_pid ]] && kill -0 "$inner_pid" 2>/dev/null; then
    for c in $(cat /proc/"$inner_pid"/task/*/children 2>/dev/null); do kill -KILL "$c" 2>/dev/null || true; done
    wait "$inner_pid" 2>/dev/null || true
  fi
  if [[ $keep == 1 ]]; then log "kept $RUN"; else rm -rf "$RUN"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gomod="" gosumdb=""
if [[ $warm_go == 1 ]]; then
  gomod=$(go env GOMODCACHE 2>/dev/null || true)/cache/download
  [[ -d $gomod ]] || { log "--warm-go: no GOMODCACHE download dir on this machine"; gomod=""; }
  # with a file:// proxy first, the checksum database would be looked up through it (and fail);
  # name the database's own URL: through the first https proxy (sum.golang.org itself may not resolve)
  sumdb=$(go env GOSUMDB) firstproxy=$(go env GOPROXY | tr ',|' '\n\n' | grep -m1 '^https://' || true)
  gosumdb=$sumdb; [[ -n $firstproxy && $sumdb != *" "* && $sumdb != off ]] && gosumdb="$sumdb ${firstproxy%/}/sumdb/$sumdb"
fi

# the steps, as root inside the fresh root
cat > "$RUN/out/steps.sh" <<EOF
set -uo pipefail
phase() { local n=\$1 s rc; shift; s=\$(date +%s); echo "== fresh: \$n: \$*" >&2; "\$@"; rc=\$?
  echo "\$n \$rc \$(( \$(date +%s) - s ))" >> /mnt/out/phases; return \$rc; }
phase clone bash -c 'mkdir -p "\$(dirname $dir)" && git clone -q --no-local file:///mnt/origin $dir && git -C $dir checkout -q --detach $sha' || exit
cd $dir
phase setup bash scripts/setup.sh || exit
if [[ $probe == 1 ]]; then phase probe-nspawn bash /mnt/out/probe.sh || true; fi
phase test $test_cmd || exit
EOF
cat > "$RUN/out/probe.sh" <<'EOF'
# nested systemd-nspawn, as the lab uses it, but a throwaway name and a private network (no bridge)
set -x
systemd-nspawn --version | head -1
# the upper layer on a tmpfs, as the lab's VMs have (an overlayfs cannot be an upper layer)
d=$(mktemp -d /tmp/nspawn-probe.XXXXXX); mount -t tmpfs tmpfs "$d"; mkdir -p "$d/u" "$d/w" "$d/m"
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/u,workdir=$d/w" "$d/m"
systemd-machine-id-setup --root="$d/m" >/dev/null 2>&1 || true
timeout 30 systemd-nspawn -q --register=no --keep-unit -M hsfresh-probe --private-network -D "$d/m" /bin/true; echo "one-shot: rc=$?"
timeout 90 systemd-nspawn -q --register=no --keep-unit -M hsfresh-probe --private-network -D "$d/m" --boot systemd.unit=poweroff.target; echo "boot to poweroff: rc=$?"
umount "$d/m"; umount "$d"; rmdir "$d"
EOF

# mounts (private mount namespace) and the chroot, run as PID 1 of a new PID namespace
cat > "$RUN/out/inner.sh" <<EOF
set -euo pipefail
R=$RUN/root
mount -t overlay overlay -o lowerdir=$BASE,upperdir=$RUN/upper,workdir=$RUN/work \$R
mount -t proc proc \$R/proc
mount -t sysfs sysfs \$R/sys
mount --rbind /sys/fs/cgroup \$R/sys/fs/cgroup
mount -t tmpfs -o mode=755,nosuid dev \$R/dev
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r d ma mi <<<"\$n"; mknod -m 666 \$R/dev/\$d c \$ma \$mi
done
mkdir \$R/dev/pts \$R/dev/shm \$R/dev/net 2>/dev/null || true
[[ -e /dev/net/tun ]] && mknod -m 666 \$R/dev/net/tun c 10 200
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts \$R/dev/pts
ln -s pts/ptmx \$R/dev/ptmx; ln -s /proc/self/fd \$R/dev/fd
ln -s /proc/self/fd/0 \$R/dev/stdin; ln -s /proc/self/fd/1 \$R/dev/stdout; ln -s /proc/self/fd/2 \$R/dev/stderr
mount -t tmpfs -o mode=1777 shm \$R/dev/shm
mount -t tmpfs -o mode=755 run \$R/run
ro() { mount --bind "\$1" "\$2"; mount -o remount,bind,ro "\$2"; }
ro /usr/bin/node \$R/usr/bin/node
ro /usr/lib/node_modules \$R/usr/lib/node_modules
[[ -d /usr/include/node ]] && ro /usr/include/node \$R/usr/include/node
ro /usr/local/go \$R/usr/local/go
ro $REPO \$R/mnt/origin
mount --bind $RUN/out \$R/mnt/out
[[ -n "$gomod" ]] && ro "$gomod" \$R/mnt/host-gomod
cp /etc/resolv.conf \$R/etc/resolv.conf; cp /etc/hosts \$R/etc/hosts
chroot \$R /usr/bin/env -i HOME=/root USER=root LOGNAME=root SHELL=/bin/bash LANG=C.UTF-8 TERM=dumb \
  PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  $(for v in "${CA_VARS[@]}"; do [[ -n ${!v:-} ]] && printf '%q ' "$v=${!v}"; done)\
  $( [[ -n $gomod ]] && printf '%q ' "GOPROXY=file:///mnt/host-gomod,$(go env GOPROXY)" "GOSUMDB=$gosumdb" )\
  bash /mnt/out/steps.sh
EOF

log "commit $sha ($subject); run dir $RUN"
log "in the fresh root: git clone, bash scripts/setup.sh, $test_cmd"
start_iso=$(date -u +%FT%TZ); t0=$(date +%s); load_start=$(cut -d" " -f1-3 /proc/loadavg)
set +e
unshare --mount --propagation private --pid --fork --kill-child bash "$RUN/out/inner.sh" > >(tee "$LOG") 2>&1 &
inner_pid=$!
wait "$inner_pid"; status=$?
inner_pid=""
set -e
total=$(( $(date +%s) - t0 ))
sleep 0.5   # let tee flush

# ---------------------------------------------------------------- results
STATUS=$status TOTAL=$total START=$start_iso SHA=$sha SUBJECT=$subject REV=$rev SUITES=${suites:-all} \
TEST_CMD=$test_cmd CMDLINE=$cmdline WARM=$warm_go BASE_BUILT=$base_built BASE_SECS=$base_secs \
LOAD_START=$load_start LOAD_END="$(cut -d" " -f1-3 /proc/loadavg)" DIR=$dir BASE_INFO=$(cat "$BASE/.hastack-fresh-base" 2>/dev/null | tail -1) OUT=$out \
node - "$RUN/out" <<'EOF'
const fs = require("fs"), os = require("os"), path = require("path");
const dir = process.argv[2], E = process.env;
const log = fs.existsSync(`${dir}/log`) ? fs.readFileSync(`${dir}/log`, "utf8").split("\n") : [];
const phases = (fs.existsSync(`${dir}/phases`) ? fs.readFileSync(`${dir}/phases`, "utf8") : "")
  .trim().split("\n").filter(Boolean).map(l => { const [name, rc, s] = l.split(" "); return { name, exit: +rc, seconds: +s }; });
// scripts/setup.sh: "== setup: <step> (<seconds since start>s)"
const marks = log.map(l => l.match(/^== setup: (.*) \((\d+)s\)$/)).filter(Boolean).map(m => [m[1], +m[2]]);
const setupSteps = marks.slice(0, -1).map(([n, s], i) => ({ name: n, seconds: marks[i + 1][1] - s }));
const setupPhase = phases.find(p => p.name === "setup");
if (setupPhase && setupPhase.exit !== 0 && marks.length)
  setupSteps.push({ name: marks[marks.length - 1][0] + " (failed)", seconds: setupPhase.seconds - marks[marks.length - 1][1] });
const failedTests = [...new Set(log.filter(l => /^  ● /.test(l)).map(l => l.slice(4)))];
const counts = [...log].reverse().find(l => /^\d+ passed, \d+ failed$/.test(l));
const status = +E.STATUS;
const r = {
  command: E.CMDLINE, date: E.START, commit: E.SHA, subject: E.SUBJECT, rev: E.REV,
  suites: E.SUITES, test_command: E.TEST_CMD, go_module_cache: E.WARM === "1" ? "warm (host GOMODCACHE as file:// GOPROXY)" : "cold",
  machine: { cores: os.cpus().length, kernel: os.release(), loadavg_start: E.LOAD_START, loadavg_end: E.LOAD_END },
  base: { built_now: E.BASE_BUILT === "true", seconds: E.BASE_BUILT === "true" ? +E.BASE_SECS : 0, info: E.BASE_INFO },
  clone_dir: E.DIR, phases, setup_steps: setupSteps, tests: counts || null, failed_tests: failedTests,
  total_seconds: +E.TOTAL, exit_status: status, result: status === 0 ? "pass" : "FAIL",
  failed_phase: (phases.find(p => p.exit !== 0) || {}).name || (status ? "mounts" : null),
  last_lines: status === 0 ? [] : log.filter((l, i) => i < log.length - 1 || l).slice(-30),
};
fs.mkdirSync(path.dirname(E.OUT), { recursive: true });
fs.writeFileSync(`${E.OUT}.json`, JSON.stringify(r, null, 2) + "\n");
const md = [
  `# Fresh-machine check: ${r.result}`, "",
  `- command: \`${r.command}\``, `- date: ${r.date}`, `- commit: \`${r.commit.slice(0, 12)}\` ${r.subject}`,
  `- suites: ${r.suites} (\`${r.test_command}\`)`, `- Go module cache: ${r.go_module_cache}`,
  `- machine: ${r.machine.cores} cores (shared), kernel ${r.machine.kernel}, load average ${r.machine.loadavg_start} at start, ${r.machine.loadavg_end} at end`,
  `- fresh root: Debian 12 ${r.base.built_now ? `built now in ${r.base.seconds} s` : "reused"} (${r.base.info})`,
  `- exit status: ${r.exit_status}${r.failed_phase ? ` (failed in: ${r.failed_phase})` : ""}; total ${r.total_seconds} s`,
  `- clone in the fresh root: \`${r.clone_dir}\``,
  r.tests ? `- tests: ${r.tests}` : "", ...failedTests.map(t => `  - failed: ${t}`), "",
  "| phase | seconds | exit |", "| --- | ---: | ---: |",
  ...(r.base.built_now ? [`| debootstrap base | ${r.base.seconds} | 0 |`] : []),
  ...phases.flatMap(p => [`| ${p.name} | ${p.seconds} | ${p.exit} |`,
    ...(p.name === "setup" ? setupSteps.map(s => `| &nbsp;&nbsp;setup: ${s.name} | ${s.seconds} | |`) : [])]),
  `| total (without base) | ${r.total_seconds} | ${r.exit_status} |`, "",
  ...(status ? ["Last 30 lines:", "", "```", ...r.last_lines, "```", ""] : []),
].filter((l, i, a) => l !== "" || a[i - 1] !== "");
fs.writeFileSync(`${E.OUT}.md`, md.join("\n") + "\n");
console.error(`check-fresh: ${r.result} (exit ${status}, ${r.total_seconds} s) → ${E.OUT}.{json,md}`);
EOF
exit "$status"
