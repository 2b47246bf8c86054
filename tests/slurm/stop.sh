#!/bin/sh
# Stop the test cluster started by tests/slurm/start.sh DIR: the daemons recorded in DIR's
# pid files, each by its own pid, and wait for them to go.
dir=${1:?usage: stop.sh DIR}
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    kill -9 "$pid" 2>/dev/null || true
done
exit 0
