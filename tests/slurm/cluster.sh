#!/bin/bash
# A throw-away single-node SLURM cluster on loopback, entirely inside one folder DIR:
# munged, MariaDB, slurmdbd (so sacct is real: submitit reads job states only through sacct),
# slurmctld and slurmd, each a foreground child whose PID is kept in DIR/run/<name>.pid.
# Nothing under /etc, /run or /var is touched. Needs root and the Debian packages slurmctld,
# slurmd, slurm-client, munge, slurmdbd, mariadb-server-core, mariadb-client-core.
#
#   cluster.sh start DIR [CPUS]   start and wait for an idle node; writes DIR/env (SLURM_CONF=...)
#   cluster.sh stop DIR           cancel every job, then stop only the daemons started here
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR [CPUS]}
mkdir -p "$2"
B=$(cd "$2" && pwd)
export SLURM_CONF=$B/etc/slurm.conf PATH=$PATH:/usr/sbin:/sbin

say() { echo "[cluster.sh] $*" >&2; }
die() { say "$*; logs in $B/log"; stop; exit 1; }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {  # tries command...: 0.1 s apart
  local n=$1; shift
  for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
daemon() {  # name command...: run in the foreground of a background child, remember its PID
  local name=$1; shift
  "$@" >"$B/log/$name.out" 2>&1 &
  echo $! >"$B/run/$name.pid"
}
ours() {  # pid: alive and started with this cluster's SLURM_CONF (a reused PID is left alone)
  kill -0 "$1" 2>/dev/null && tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$SLURM_CONF"
}
halt() {  # name: TERM, then KILL after 10 s
  local f=$B/run/$1.pid p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  if ours "$p"; then
    kill -TERM "$p"
    wait_for 100 bash -c "! kill -0 $p" || kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$f"
}

start() {
  for b in munged mungekey munge slurmctld slurmd slurmdbd sbatch sacct sacctmgr mariadbd mariadb-install-db mariadb; do
    command -v "$b" >/dev/null || { say "missing $b: apt-get install slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core"; exit 1; }
  done
  [ "$(id -u)" = 0 ] || { say "slurmd must run as root"; exit 1; }
  local host cpus mem sock ctld_port d_port dbd_port db_port
  host=$(hostname -s)
  cpus=${3:-$(nproc)}
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')  # more than slurmd sees drains the node
  ctld_port=$(port) d_port=$(port) dbd_port=$(port) db_port=$(port)
  mkdir -p "$B/etc" "$B/munge" "$B/state" "$B/spool" "$B/log" "$B/run" "$B/db"
  # munged refuses a socket below a folder without o+x, and pytest's tmp folders are 0700.
  sock=$(mktemp -d /tmp/scalinglab-munge.XXXXXX)/socket
  chmod 755 "$(dirname "$sock")"
  echo "$(dirname "$sock")" >"$B/run/munge-dir"
  chmod 700 "$B/munge"
  mungekey --create --keyfile="$B/munge/key"
  daemon munged munged --foreground --key-file="$B/munge/key" --socket="$sock" --pid-file="$B/munge/pid" \
    --log-file="$B/log/munged.log" --seed-file="$B/munge/seed"
  wait_for 100 test -S "$sock" || die "munged did not start"

  mariadb-install-db --no-defaults --datadir="$B/db" --user=root --auth-root-authentication-method=normal \
    --skip-test-db >"$B/log/mariadb-install-db.log" 2>&1 || die "mariadb-install-db failed"
  daemon mariadbd mariadbd --no-defaults --datadir="$B/db" --socket="$B/run/mariadb.sock" --port="$db_port" \
    --bind-address=127.0.0.1 --user=root --innodb-buffer-pool-size=64M --log-error="$B/log/mariadbd.log"
  wait_for 300 mariadb --no-defaults -S "$B/run/mariadb.sock" -uroot -e 'select 1' || die "mariadbd did not start"

  # slurmdbd reads slurmdbd.conf beside SLURM_CONF and insists on mode 600.
  cat >"$B/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$sock
DbdHost=$host
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
PidFile=$B/run/slurmdbd.own.pid
LogFile=$B/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=root
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$B/etc/slurmdbd.conf"
  # batch_sched_delay=0: a job starts in ~1 s, not ~4 s. linuxproc and task/none: no cgroups
  # here. config_overrides: the node may claim more CPUs than it has. KillWait=2: a cancelled
  # job is gone in seconds. MinJobAge: finished jobs stay visible. AccountingStoragePass: the
  # munge socket for slurmctld/sacct <-> slurmdbd, which otherwise look in /run/munge.
  # cred_expire: a requeued job waits this long before it may start again (default 120 s).
  # sched_interval=2: a requeued job, eligible again, waits for the main scheduling pass
  # (default every 60 s; nothing else wakes it).
  cat >"$SLURM_CONF" <<EOF
ClusterName=scalinglab
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/run/slurmctld.own.pid
SlurmdPidFile=$B/run/slurmd.own.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
PlugStackConfig=$B/etc/plugstack.conf
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
AccountingStoragePass=$sock
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=3600
InactiveLimit=0
KillWait=2
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$B/etc/plugstack.conf"
  daemon slurmdbd slurmdbd -D
  wait_for 300 timeout 5 sacctmgr -n show stats || die "slurmdbd did not start"
  daemon slurmctld slurmctld -D -c
  daemon slurmd slurmd -D
  wait_for 300 bash -c '[ "$(sinfo -h -o %t)" = idle ]' || die "the node did not become idle"
  echo "SLURM_CONF=$SLURM_CONF" >"$B/env"
}

stop() {
  if [ -s "$B/run/slurmctld.pid" ] && ours "$(cat "$B/run/slurmctld.pid")"; then
    # Jobs outlive slurmd: cancel them and wait until none is left running.
    timeout 10 scancel --full --quiet --user=root || true
    wait_for 150 bash -c '! timeout 5 squeue -h -o %T | grep -q .' || true
  fi
  halt slurmd & halt slurmctld; wait
  halt slurmdbd
  halt mariadbd & halt munged; wait
  if [ -s "$B/run/munge-dir" ]; then
    rm -rf -- "$(cat "$B/run/munge-dir")"
    rm -f "$B/run/munge-dir"
  fi
}

case $cmd in
  start) start "$@" ;;
  stop) stop ;;
  *) say "usage: cluster.sh start|stop DIR [CPUS]"; exit 64 ;;
esac
