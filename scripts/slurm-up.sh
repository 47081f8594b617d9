#!/usr/bin/env bash
# Starts a one-node Slurm 22.05 cluster with slurmrestd (JWT) for the cpn Slurm executor tests.
# Idempotent: installs the Debian packages if missing, reuses a running cluster, and prints the
# environment a test needs (SLURM_CONF, CPN_SLURM_URL, CPN_SLURM_USER, CPN_SLURM_TOKEN) to stdout.
#
# usage: scripts/slurm-up.sh [WORKDIR]      (default /tmp/cpn-slurm; must be world-readable)
#        scripts/slurm-up.sh --down [WORKDIR]
# Traps handled (see shared/reference/compute.md §3.1): slurm-wlm does not pull in the JWT plugin;
# slurmrestd refuses to run as root; slurmrestd needs SLURM_JWT=daemon.
set -euo pipefail

down=0
if [[ "${1:-}" == "--down" ]]; then down=1; shift; fi
WORKDIR=${1:-/tmp/cpn-slurm}
B=$WORKDIR/slurm
REST_USER=cpnrest
REST_PORT=${CPN_SLURM_REST_PORT:-16820}

stop_pid() { [[ -f "$1" ]] && kill "$(cat "$1")" 2>/dev/null || true; rm -f "$1"; }

if [[ $down == 1 ]]; then
  stop_pid "$B/run/slurmrestd.pid"
  stop_pid "$B/run/slurmd.pid"
  stop_pid "$B/run/slurmctld.pid"
  stop_pid "$B/run/munged.pid"
  exit 0
fi

need=()
for bin in slurmctld slurmd slurmrestd munged sinfo; do command -v "$bin" >/dev/null || need=(x); done
[[ -f /usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so || -f /usr/lib/slurm-wlm/auth_jwt.so ]] \
  || ls /usr/lib/*/slurm-wlm/auth_jwt.so >/dev/null 2>&1 || need=(x)
if [[ ${#need[@]} -gt 0 ]]; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm slurmrestd munge slurm-client slurm-wlm-jwt-plugin >&2
fi

mkdir -p "$B"/{state,spool,log,munge,run,rest}
[[ -f $B/munge/munge.key ]] || { mungekey -c -k "$B/munge/munge.key" && chmod 400 "$B/munge/munge.key"; }
[[ -f $B/state/jwt_hs256.key ]] || { dd if=/dev/urandom of="$B/state/jwt_hs256.key" bs=32 count=1 status=none && chmod 600 "$B/state/jwt_hs256.key"; }
host=$(hostname)
cat > "$B/slurm.conf" <<CONF
ClusterName=cpn
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$B/state/jwt_hs256.key
CredType=cred/munge
AuthInfo=socket=$B/munge/munge.socket
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host CPUs=$(nproc) RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$B/slurm.conf

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive "$B/run/munged.pid" || munged --key-file="$B/munge/munge.key" --socket="$B/munge/munge.socket" \
  --pid-file="$B/run/munged.pid" --log-file="$B/log/munged.log" --seed-file="$B/munge/munge.seed" --force
alive "$B/run/slurmctld.pid" || slurmctld
alive "$B/run/slurmd.pid" || slurmd
for _ in $(seq 1 80); do sinfo -h -o %t 2>/dev/null | grep -qE 'idle|mix|alloc' && break; sleep 0.25; done
sinfo -h -o %t | grep -qE 'idle|mix|alloc' || { echo "slurm node did not come up; see $B/log" >&2; exit 1; }

id -u "$REST_USER" >/dev/null 2>&1 || useradd -M -r -s /usr/sbin/nologin "$REST_USER"
chown "$REST_USER" "$B/rest"; chmod 755 "$WORKDIR" "$B" "$B/munge" "$B/run" "$B/log"; chmod 777 "$B/rest"
if ! alive "$B/run/slurmrestd.pid"; then
  setsid runuser -u "$REST_USER" -- env SLURM_CONF="$SLURM_CONF" SLURM_JWT=daemon \
    slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 "127.0.0.1:$REST_PORT" > "$B/log/slurmrestd.log" 2>&1 &
  echo $! > "$B/run/slurmrestd.pid"
fi
TOKEN=$(scontrol token username="$REST_USER" lifespan=7200 | cut -d= -f2)
for _ in $(seq 1 40); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-SLURM-USER-NAME: $REST_USER" -H "X-SLURM-USER-TOKEN: $TOKEN" \
    "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" || true)
  [[ $code == 200 ]] && break; sleep 0.25
done
[[ $code == 200 ]] || { echo "slurmrestd did not answer (HTTP $code); see $B/log/slurmrestd.log" >&2; exit 1; }
echo "SLURM_CONF=$SLURM_CONF"
echo "CPN_SLURM_URL=http://127.0.0.1:$REST_PORT"
echo "CPN_SLURM_USER=$REST_USER"
echo "CPN_SLURM_TOKEN=$TOKEN"
echo "CPN_SLURM_WORKDIR=$B/rest"
