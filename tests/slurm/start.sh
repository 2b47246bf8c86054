#!/bin/sh
# Start a single-node Slurm cluster on this machine for tests, with no systemd: munged,
# slurmctld and slurmd run as daemons whose configuration, state, sockets and logs all live
# in DIR. Needs root (slurmd starts jobs as their user) and Debian's slurm-wlm and munge.
#
#   tests/slurm/start.sh DIR      # then: export SLURM_CONF=DIR/slurm.conf
#   tests/slurm/stop.sh DIR
#
# Waits until `sinfo` shows the node idle; exits non-zero (with the daemons' logs) if it
# does not within 60 s.
set -eu
dir=${1:?usage: start.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir/munge"

# munge: a fresh key and a private socket, so a system munged (if any) is left alone.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$dir/munge/munge.key"
munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" --force

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024 / 2) }' /proc/meminfo)
user=$(id -un)
cat > "$dir/slurm.conf" <<CONF
# Single-node test cluster written by tests/slurm/start.sh.
ClusterName=nitrate-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${NITRATE_SLURMCTLD_PORT:-6917}
SlurmdPort=${NITRATE_SLURMD_PORT:-6918}
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$dir/slurm.conf"
slurmctld -i -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

i=0
while [ $i -lt 60 ]; do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)
    if [ "$state" = "idle" ]; then
        echo "slurm: node $host idle; SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
    i=$((i + 1))
done
echo "slurm: node $host not idle after 60 s (state: '${state:-none}')" >&2
for f in "$dir"/log/*.log; do
    echo "--- $f" >&2
    tail -n 20 "$f" >&2
done
exit 1
