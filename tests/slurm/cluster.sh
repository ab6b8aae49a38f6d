#!/usr/bin/env bash
# portaflow's real SLURM test cluster (Debian 12, slurm-wlm 22.05), run as root without systemd.
#
#   tests/slurm/cluster.sh up [--no-accounting] [--nodes N]
#                                                 install packages if missing, write configs, start daemons, wait
#                                                 (--nodes N, N >= 1: also N compute nodes, each in a network
#                                                 namespace of its own on a private bridge; see "Compute nodes")
#   tests/slurm/cluster.sh down                   cancel all jobs, stop exactly the daemons this script started,
#                                                 remove exactly the namespaces, links and files it made
#   tests/slurm/cluster.sh status                 show daemons, node and accounting; exit 0 when jobs can run
#   tests/slurm/cluster.sh accounting on|off      start/stop slurmdbd only (sacct then fails: polling fallbacks)
#
# Why a script and not a container: the point is to test against the genuine SLURM daemons with limits that
# bite (two partitions with different MaxTime, enforced accounts and QOS, fake GRES GPUs), so that a wrong
# directive fails here the way it fails on a real site. See tests/slurm/README.md for the verified behaviours.
#
# Every daemon this script starts has its pid recorded under $RUN_DIR/pids/; `down` stops those pids (checked
# against /proc/PID/comm, so a reused pid is never signalled) and nothing else. Daemons that were already
# running when `up` was called (a system munged or mariadbd) are used but never stopped.
#
# Compute nodes (`up --nodes N`): the login/controller host keeps its node ($NODE on 127.0.0.1, partitions cpu
# and gpu, for the fast tests) and gets the address $LOGIN_ADDR on a bridge $BRIDGE this script creates; node
# pfnodeI lives in network namespace pf-nodeI (its own UTS namespace too: hostname pfnodeI) with address
# $SUBNET.(10+I) on a veth pair into the bridge, runs its own `slurmd -N pfnodeI`, shares munge's socket and
# every file through the filesystem, and has no route anywhere but the bridge. Partition `multi` holds them.
# What was made is listed in $RUN_DIR/network; `down` (or `up` without --nodes) removes exactly that.
set -euo pipefail
export LC_ALL=C

CLUSTER=portaflow
NODE="$(hostname -s)"
RUN_DIR=/run/portaflow-slurm              # pid files and the current mode (lost on reboot: that is right)
LIB_DIR=/var/lib/portaflow-slurm          # slurmctld/slurmd state (kept: job ids keep increasing) and logs
LOG_DIR="$LIB_DIR/log"
ETC=/etc/slurm
DB_SOCKET=/run/mysqld/mysqld.sock
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=portaflow-slurmdbd                 # local socket-only database of a throw-away test cluster
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
NUM_FAKE_GPUS=2
READY_TIMEOUT=60                           # seconds to wait for a daemon or the node
BRIDGE=pfbr0                               # compute nodes' private network (only with --nodes)
SUBNET=10.77.0                             # its /24: login .1, pfnodeI .(10+I)
LOGIN_ADDR=$SUBNET.1
NETWORK_RECORD=$RUN_DIR/network            # one line per thing made: "bridge NAME", "netns NAME", "dir PATH"
MAX_NODES=8

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------- processes
# comm of a live pid; empty if the process does not exist or is a zombie (a daemonising parent that init has
# not reaped yet still has the daemon's comm, and must count neither as running nor as someone else's daemon).
# Bash builtins only (no cat): `up` scans all of /proc and must stay fast.
comm_of() {
    local stat comm
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == [ZX] ]] && return 0
    { read -r comm <"/proc/$1/comm"; } 2>/dev/null || return 0
    echo "$comm"
}

# pid recorded under KEY if that process is alive and still is COMM (default: KEY), else empty (a stale
# record is removed). Compute nodes' slurmds are recorded as slurmd-NODE, with comm slurmd.
recorded_pid() {
    local key=$1 name=${2:-$1} file="$RUN_DIR/pids/$1" pid
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    if [[ $pid =~ ^[0-9]+$ && "$(comm_of "$pid")" == "$name" ]]; then
        echo "$pid"
    else
        rm -f "$file"
    fi
}

# pids of every process whose comm is exactly NAME (read from /proc; used to detect, never to signal).
pids_named() {
    local d comm
    for d in /proc/[0-9]*; do
        comm=
        { read -r comm <"$d/comm"; } 2>/dev/null || continue
        [[ $comm == "$1" && -n "$(comm_of "${d#/proc/}")" ]] && echo "${d#/proc/}"
    done
    return 0
}

# A NAME process not started by us: reusing it would leave the cluster half ours (wrong config, pid files).
foreign_pid() {
    local ours=" " pid file
    for file in "$RUN_DIR"/pids/*; do  # every pid recorded under any key (read only: records stay as they are)
        [[ -f $file ]] && ours+="$(<"$file") "
    done
    for pid in $(pids_named "$1"); do
        [[ $ours != *" $pid "* ]] && { echo "$pid"; return 0; }
    done
    return 0
}

# Wait until the daemon's own pid file names a live COMM (default: KEY) process, then record that pid as ours.
record_daemon() {
    local key=$1 pidfile=$2 name=${3:-$1} i pid
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        if [[ -s $pidfile ]]; then
            pid=$(tr -dc 0-9 <"$pidfile")
            if [[ -n $pid && "$(comm_of "$pid")" == "$name" ]]; then
                echo "$pid" >"$RUN_DIR/pids/$key"
                return 0
            fi
        fi
        sleep 0.1
    done
    die "$name did not start (no live pid in $pidfile); see $LOG_DIR/$name.log"
}

# SIGTERM our recorded KEY (a COMM process, default KEY), wait for it to exit (SIGKILL after 30 s), forget it.
stop_daemon() {
    local key=$1 name=${2:-$1} pid i
    pid=$(recorded_pid "$key" "$name")
    [[ -n $pid ]] || { rm -f "$RUN_DIR/pids/$key"; return 0; }
    say "stopping $key (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        [[ "$(comm_of "$pid")" == "$name" ]] || break
        sleep 0.1
    done
    if [[ "$(comm_of "$pid")" == "$name" ]]; then
        say "$name (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while [[ "$(comm_of "$pid")" == "$name" ]]; do sleep 0.1; done
    fi
    rm -f "$RUN_DIR/pids/$key"
}

# detached [--background] LOG COMMAND...: run COMMAND with stdin /dev/null, output appended to LOG, and no other
# inherited file descriptor (our lock on fd 9, a CI runner's pipes): a daemon holding them would block the next
# `up` or keep the caller's `cluster.sh up | tee` from ever ending. --background for a daemon that does not fork
# itself: the subshell that closes the descriptors is the one sent to the background and exec'd, so no shell
# holding them lingers.
detached() {
    local background=no log
    [[ $1 == --background ]] && { background=yes; shift; }
    log=$1
    shift
    if [[ $background == yes ]]; then
        (_close_fds_and_exec "$@") </dev/null >>"$log" 2>&1 &
    else
        (_close_fds_and_exec "$@") </dev/null >>"$log" 2>&1
    fi
}

_close_fds_and_exec() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec "$@"
}

wait_for() {  # COMMAND...: retry COMMAND (quietly) every 0.2 s for READY_TIMEOUT seconds
    local i
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------------------------------------- packages
ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef
        -o Dpkg::Options::=--force-confold "${missing[@]}")
    # The packages' maintainer scripts would start the daemons through /etc/init.d with Debian's config, where
    # an init system runs; this script starts them itself. A policy-rc.d answering 101 forbids those starts.
    local policy=/usr/sbin/policy-rc.d made_policy=no
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# temporary, from tests/slurm/cluster.sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        made_policy=yes
    fi
    # apt-get update only when the install cannot find the packages (empty or stale lists).
    local ok=yes
    if ! "${apt[@]}" </dev/null >"$LOG_DIR/apt.log" 2>&1; then
        if ! apt-get update -q </dev/null >>"$LOG_DIR/apt.log" 2>&1 || ! "${apt[@]}" </dev/null >>"$LOG_DIR/apt.log" 2>&1; then
            ok=no
        fi
    fi
    [[ $made_policy == no ]] || rm -f "$policy"
    [[ $ok == yes ]] || die "apt-get failed; see $LOG_DIR/apt.log"
}

# ---------------------------------------------------------------------------------------------- configs
CONFIG_CHANGED=()
# write_config PATH MODE OWNER: stdin -> PATH, only when the content differs (so `up` twice changes nothing).
write_config() {
    local path=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
    else
        install -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$path"
        rm -f "$tmp"
        CONFIG_CHANGED+=("$(basename "$path")")
    fi
    chmod "$mode" "$path"
    chown "$owner" "$path"
}

config_changed() { [[ " ${CONFIG_CHANGED[*]-} " == *" $1 "* ]]; }

write_configs() {
    local accounting=$1 nodes=$2 mem_kib real_mem i ctld_addr=127.0.0.1
    # With compute nodes in namespaces, slurmctld must be reached at an address they can route to (their
    # 127.0.0.1 is their own); clients on this host reach the bridge address as well.
    ((nodes == 0)) || ctld_addr=$LOGIN_ADDR
    mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    real_mem=$((mem_kib * 8 / 10 / 1024))   # MiB; ~80 % of RAM so the OS and the test runner keep the rest

    install -d -m 755 "$ETC"
    # Process substitution, not a pipe: write_config must run in this shell to record CONFIG_CHANGED.
    write_config "$ETC/slurm.conf" 644 root:root < <(
        cat <<EOF
# Written by tests/slurm/cluster.sh: portaflow's SLURM test cluster ($nodes compute node(s) in namespaces). Do not edit here.
ClusterName=$CLUSTER
SlurmctldHost=$NODE($ctld_addr)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$LIB_DIR/state/slurmctld
# %n: the node's name (one slurmd per node, all sharing this filesystem).
SlurmdSpoolDir=$LIB_DIR/state/slurmd-%n
SlurmctldPidFile=$RUN_DIR/daemon/slurmctld.pid
SlurmdPidFile=$RUN_DIR/daemon/slurmd-%n.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups here: track job processes by parent pid, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# Cores and memory are consumable, so jobs share the node; without DefMemPerCPU a job takes all memory.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
# The node claims 8 CPUs on a 2-core machine so several jobs (and Dask/Parsl workers) run at once.
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
# A job over its partition's MaxTime is rejected at submission (the default would leave it pending forever).
EnforcePartLimits=ALL
KillWait=5
OverTimeLimit=0
MinJobAge=300
InactiveLimit=0
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/none
GresTypes=gpu
EOF
        if [[ $accounting == yes ]]; then
            cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
EOF
        else
            echo "AccountingStorageType=accounting_storage/none"
        fi
        cat <<EOF
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=8 Boards=1 SocketsPerBoard=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=$real_mem Gres=gpu:$NUM_FAKE_GPUS Features=intel,avx2 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=01:00:00 State=UP
PartitionName=gpu Nodes=$NODE Default=NO MaxTime=00:30:00 State=UP
EOF
        if ((nodes > 0)); then
            # LLN: each job goes to the least loaded node, so a step's Dask workers spread over the nodes.
            for ((i = 1; i <= nodes; i++)); do
                echo "NodeName=pfnode$i NodeAddr=$SUBNET.$((10 + i)) CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=8192 Features=multi State=UNKNOWN"
            done
            echo "PartitionName=multi Nodes=pfnode[1-$nodes] Default=NO MaxTime=01:00:00 LLN=YES State=UP"
            # At most one CPU per node for this partition's jobs: 1-core jobs there (the test profile's Dask
            # workers) land on different nodes, whatever else runs (LLN alone breaks ties by node order).
            echo "PartitionName=spread Nodes=pfnode[1-$nodes] Default=NO MaxTime=02:00:00 MaxCPUsPerNode=1 LLN=YES State=UP"
        fi
    )

    write_config "$ETC/gres.conf" 644 root:root < <(
        echo "# Written by tests/slurm/cluster.sh: fake GPUs (character devices like /dev/null; nothing computes on them)."
        echo "AutoDetect=off"
        for ((i = 0; i < NUM_FAKE_GPUS; i++)); do
            echo "NodeName=$NODE Name=gpu File=/dev/fakegpu$i"
        done
    )

    write_config "$ETC/slurmdbd.conf" 600 root:root <<EOF
# Written by tests/slurm/cluster.sh. Must be mode 600 and owned by SlurmUser, or slurmdbd refuses to start.
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/daemon/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF

    for ((i = 0; i < NUM_FAKE_GPUS; i++)); do
        [[ -c /dev/fakegpu$i ]] || mknod -m 666 "/dev/fakegpu$i" c 1 3
    done
}

# ---------------------------------------------------------------------------------------------- daemons
start_munged() {
    [[ -n $(recorded_pid munged) ]] && return 0
    if [[ -n $(foreign_pid munged) ]]; then
        say "using the munged that is already running (not ours; \`down\` leaves it)"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        install -d -m 700 -o munge -g munge /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    install -d -m 755 -o munge -g munge /run/munge
    install -d -m 700 -o munge -g munge /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    detached "$LOG_DIR/munged.log" runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid \
        || die "munged failed to start; see /var/log/munge/munged.log"
    record_daemon munged /run/munge/munged.pid
}

db_answers() { mariadb-admin --socket="$DB_SOCKET" -u root ping; }

start_mariadbd() {
    [[ -n $(recorded_pid mariadbd) ]] && return 0
    if [[ -n $(foreign_pid mariadbd) ]]; then
        wait_for db_answers || die "a mariadbd not started by this script runs but does not answer on $DB_SOCKET"
        say "using the mariadbd that is already running (not ours; \`down\` leaves it)"
        return 0
    fi
    install -d -m 755 -o mysql -g mysql /run/mysqld
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        say "initialising /var/lib/mysql"
        detached "$LOG_DIR/mariadbd.log" mariadb-install-db --user=mysql --datadir=/var/lib/mysql
    fi
    rm -f /run/mysqld/mysqld.pid
    # mariadbd does not daemonise itself: setsid detaches it from our session, so a Ctrl-C or a CI job's
    # process-group kill after `up` returns does not take the database down.
    detached --background "$LOG_DIR/mariadbd.log" setsid /usr/sbin/mariadbd --user=mysql --skip-networking \
        --socket="$DB_SOCKET" --pid-file=/run/mysqld/mysqld.pid
    record_daemon mariadbd /run/mysqld/mysqld.pid
    wait_for db_answers || die "mariadbd does not answer; see $LOG_DIR/mariadbd.log"
}

setup_database() {
    mariadb --socket="$DB_SOCKET" -u root <<EOF || die "could not create the slurmdbd database"
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
EOF
}

dbd_answers() { sacctmgr -n -P show cluster format=cluster; }

start_slurmdbd() {
    [[ -n $(recorded_pid slurmdbd) ]] && return 0
    rm -f "$RUN_DIR/daemon/slurmdbd.pid"
    detached "$LOG_DIR/slurmdbd.stdout" /usr/sbin/slurmdbd || die "slurmdbd failed; see $LOG_DIR/slurmdbd.log"
    record_daemon slurmdbd "$RUN_DIR/daemon/slurmdbd.pid"
    wait_for dbd_answers || die "slurmdbd does not answer sacctmgr; see $LOG_DIR/slurmdbd.log"
}

# sacctmgr prints to stdout and exits 1 when there is "Nothing new" to add: check first, add only what lacks.
sacct_has() { [[ -n $(sacctmgr -n -P "$@" 2>/dev/null) ]]; }

setup_associations() {
    # Each sacctmgr call costs ~0.2 s: compare with the wanted state in 3 queries, change things only on a difference.
    # portaflow-test may use both QOS; `other` only normal, so `--account=other --qos=short` is a mistake SLURM reports.
    local want have acct
    want=$'other|normal|normal\nportaflow-test|normal,short|normal\ndefault=portaflow-test\nshort=00:10:00'
    have="$(sacctmgr -n -P show assoc where cluster=$CLUSTER user=root account=other,portaflow-test \
                format=account,qos,defaultqos 2>/dev/null | sort)
default=$(sacctmgr -n -P show user root format=defaultaccount 2>/dev/null)
short=$(sacctmgr -n -P show qos where name=short format=maxwall 2>/dev/null)"
    [[ $have == "$want" ]] && return 0

    say "creating the accounting associations (cluster $CLUSTER, accounts portaflow-test and other, QOS short)"
    sacct_has show cluster where cluster=$CLUSTER format=cluster || sacctmgr -i add cluster $CLUSTER >/dev/null
    sacct_has show qos where name=normal format=name || sacctmgr -i add qos normal >/dev/null
    sacct_has show qos where name=short format=name || sacctmgr -i add qos short MaxWall=00:10:00 >/dev/null
    sacctmgr -i modify qos where name=short set MaxWall=00:10:00 >/dev/null 2>&1 || true
    for acct in portaflow-test other; do
        sacct_has show account where name=$acct format=account \
            || sacctmgr -i add account $acct Cluster=$CLUSTER Description="portaflow $acct" Organization=portaflow >/dev/null
        sacct_has show assoc where cluster=$CLUSTER account=$acct user=root format=user \
            || sacctmgr -i add user root Cluster=$CLUSTER Account=$acct >/dev/null
    done
    sacctmgr -i modify user root where cluster=$CLUSTER account=portaflow-test set QOS=normal,short DefaultQOS=normal >/dev/null 2>&1 || true
    sacctmgr -i modify user root where cluster=$CLUSTER account=other set QOS=normal DefaultQOS=normal >/dev/null 2>&1 || true
    sacctmgr -i modify user root set DefaultAccount=portaflow-test >/dev/null 2>&1 || true
    sacct_has show user root where defaultaccount=portaflow-test format=user \
        || die "could not make portaflow-test root's default account"
}

ctld_answers() { scontrol ping | grep -q 'is UP'; }

start_slurmctld() {
    [[ -n $(recorded_pid slurmctld) ]] && return 0
    rm -f "$RUN_DIR/daemon/slurmctld.pid"
    detached "$LOG_DIR/slurmctld.stdout" /usr/sbin/slurmctld || die "slurmctld failed; see $LOG_DIR/slurmctld.log"
    record_daemon slurmctld "$RUN_DIR/daemon/slurmctld.pid"
    wait_for ctld_answers || die "slurmctld does not answer; see $LOG_DIR/slurmctld.log"
}

start_slurmd() {
    [[ -n $(recorded_pid slurmd) ]] && return 0
    rm -f "$RUN_DIR/daemon/slurmd-$NODE.pid"
    detached "$LOG_DIR/slurmd.stdout" /usr/sbin/slurmd -N "$NODE" || die "slurmd failed; see $LOG_DIR/slurmd-$NODE.log"
    record_daemon slurmd "$RUN_DIR/daemon/slurmd-$NODE.pid"
}

node_state() { sinfo -h -n "${1:-$NODE}" -o %T 2>/dev/null | head -n1; }
node_usable() { [[ "$(node_state "${1:-$NODE}")" =~ ^(idle|mixed|allocated|completing)$ ]]; }

# ---------------------------------------------------------------------------------------------- compute nodes
recorded_nodes() {  # how many compute nodes the network record holds
    [[ -f $NETWORK_RECORD ]] || { echo 0; return 0; }
    grep -c '^netns ' "$NETWORK_RECORD" || true
}

made() { echo "$*" >>"$NETWORK_RECORD"; }

# The bridge with the login address, and per node a namespace, a veth pair (pfvI outside, eth0 inside) with
# the node's address, and /etc/netns/pf-nodeI/hosts (mounted over /etc/hosts for the node's slurmd, as `ip netns
# exec` would, so the nodes resolve each other and the login host by name without touching this host's
# /etc/hosts). Refuses
# to touch a bridge, link, namespace or directory of these names that it did not make.
network_up() {
    local nodes=$1 i ns addr hosts
    touch "$NETWORK_RECORD"
    if ! grep -qx "bridge $BRIDGE" "$NETWORK_RECORD"; then
        ip link show "$BRIDGE" >/dev/null 2>&1 && die "a link $BRIDGE exists that cluster.sh did not make; remove it first"
        say "creating bridge $BRIDGE ($LOGIN_ADDR/24)"
        ip link add "$BRIDGE" type bridge
        made "bridge $BRIDGE"
        ip addr add "$LOGIN_ADDR/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    hosts="127.0.0.1 localhost"$'\n'"$LOGIN_ADDR $NODE"$'\n'
    for ((i = 1; i <= nodes; i++)); do hosts+="$SUBNET.$((10 + i)) pfnode$i"$'\n'; done
    for ((i = 1; i <= nodes; i++)); do
        ns=pf-node$i addr=$SUBNET.$((10 + i))
        if ! grep -qx "netns $ns" "$NETWORK_RECORD"; then
            ip netns list | grep -qw "^$ns" && die "a network namespace $ns exists that cluster.sh did not make; remove it first"
            ip link show "pfv$i" >/dev/null 2>&1 && die "a link pfv$i exists that cluster.sh did not make; remove it first"
            say "creating node pfnode$i: namespace $ns, address $addr"
            ip netns add "$ns"
            made "netns $ns"
            ip link add "pfv$i" type veth peer name eth0 netns "$ns"
            ip link set "pfv$i" master "$BRIDGE" up
            ip -n "$ns" addr add "$addr/24" dev eth0
            ip -n "$ns" link set lo up
            ip -n "$ns" link set eth0 up
        fi
        if [[ ! -e /etc/netns ]]; then
            install -d -m 755 /etc/netns
            made "emptydir /etc/netns"
        fi
        if ! grep -qx "dir /etc/netns/$ns" "$NETWORK_RECORD"; then
            [[ -e /etc/netns/$ns ]] && die "/etc/netns/$ns exists and cluster.sh did not make it; remove it first"
            install -d -m 755 "/etc/netns/$ns"
            made "dir /etc/netns/$ns"
        fi
        printf '%s' "$hosts" >"/etc/netns/$ns/hosts"
    done
}

# Remove what network_up made, newest first (each namespace, which takes its veth pair with it, before the
# bridge), then /etc/netns if this script made it and it is empty.
network_down() {
    [[ -f $NETWORK_RECORD ]] || return 0
    local kind what
    while read -r kind what; do
        case $kind in
            netns)  # its processes first: a job step left running there (a node set DOWN by a test) keeps the namespace,
                    # and with it the veth pair, alive after `ip netns del`, and the next `up` finds the link
                say "removing namespace $what"
                ip netns pids "$what" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
                ip netns del "$what" 2>/dev/null || true ;;
            bridge) say "removing bridge $what"; ip link del "$what" 2>/dev/null || true ;;
            dir) rm -rf -- "$what" ;;
            emptydir) rmdir -- "$what" 2>/dev/null || true ;;
        esac
    done < <(tac "$NETWORK_RECORD")
    rm -f "$NETWORK_RECORD"
}

# I: `slurmd -N pfnodeI` in network namespace pf-nodeI, with a UTS namespace of its own (hostname pfnodeI) and a
# mount namespace where /etc/netns/pf-nodeI/hosts is /etc/hosts. Not `ip netns exec`: it remounts /sys, which
# hides /sys/fs/cgroup, and slurmd refuses to start without it. Jobs inherit all three namespaces.
start_node_slurmd() {
    local i=$1 node=pfnode$1
    [[ -n $(recorded_pid "slurmd-$node" slurmd) ]] && return 0
    rm -f "$RUN_DIR/daemon/slurmd-$node.pid"
    detached "$LOG_DIR/slurmd.stdout" nsenter --net="/run/netns/pf-node$i" unshare --uts --mount --propagation slave -- \
        sh -c "mount --bind /etc/netns/pf-node$i/hosts /etc/hosts && hostname $node && exec /usr/sbin/slurmd -N $node" \
        || die "slurmd of $node failed; see $LOG_DIR/slurmd-$node.log"
    record_daemon "slurmd-$node" "$RUN_DIR/daemon/slurmd-$node.pid" slurmd
}

stop_node_slurmds() {
    local file
    for file in "$RUN_DIR"/pids/slurmd-*; do
        [[ -f $file ]] && stop_daemon "${file##*/}" slurmd
    done
    return 0
}

check_no_foreign_slurm() {
    local name pid
    for name in slurmctld slurmd slurmdbd; do
        pid=$(foreign_pid "$name")
        [[ -z $pid ]] || die "a $name (pid $pid) not started by this script is running; stop it first"
    done
}

# ---------------------------------------------------------------------------------------------- commands
cmd_up() {
    local accounting=yes nodes=0 i
    while (($#)); do
        case "$1" in
            --no-accounting) accounting=no ;;
            --nodes)
                [[ ${2-} =~ ^[0-9]+$ ]] && (($2 <= MAX_NODES)) || die "--nodes takes a number from 0 to $MAX_NODES"
                nodes=$2
                shift ;;
            *) die "usage: cluster.sh up [--no-accounting] [--nodes N]" ;;
        esac
        shift
    done
    [[ $(id -u) == 0 ]] || die "must run as root"
    install -d -m 755 "$RUN_DIR" "$RUN_DIR/pids" "$RUN_DIR/daemon" "$LIB_DIR" "$LOG_DIR" "$LIB_DIR/state/slurmctld"
    check_no_foreign_slurm
    ensure_packages
    check_no_foreign_slurm
    write_configs "$accounting" "$nodes"

    # A changed config (first run, other mode, edited script) needs a restart: running jobs survive it.
    if config_changed slurm.conf || config_changed gres.conf; then
        stop_node_slurmds
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    # Another number of compute nodes: the old ones go (their jobs with them), then the new ones are made.
    if [[ $(recorded_nodes) != "$nodes" ]]; then
        stop_node_slurmds
        network_down
    fi
    ((nodes == 0)) || network_up "$nodes"
    config_changed slurmdbd.conf && stop_daemon slurmdbd

    start_munged
    if [[ $accounting == yes ]]; then
        start_mariadbd
        setup_database
        start_slurmdbd
        setup_associations
    else
        stop_daemon slurmdbd
        stop_daemon mariadbd
    fi
    echo "$accounting" >"$RUN_DIR/accounting-configured"
    start_slurmctld
    start_slurmd
    for ((i = 1; i <= nodes; i++)); do start_node_slurmd "$i"; done

    if ! wait_for node_usable; then
        sinfo -R >&2 || true
        die "node $NODE is '$(node_state)', not idle; see $LOG_DIR/slurmd-$NODE.log and $LOG_DIR/slurmctld.log"
    fi
    for ((i = 1; i <= nodes; i++)); do
        if ! wait_for node_usable "pfnode$i"; then
            sinfo -R >&2 || true
            die "node pfnode$i is '$(node_state "pfnode$i")', not idle; see $LOG_DIR/slurmd-pfnode$i.log and $LOG_DIR/slurmctld.log"
        fi
    done
    say "up: cluster $CLUSTER, node $NODE ($(node_state)), partitions cpu (default) and gpu, accounting=$accounting"
    ((nodes == 0)) || say "up: compute nodes pfnode[1-$nodes] on $SUBNET.0/24 (login $LOGIN_ADDR on $BRIDGE), partitions multi and spread"
}

cmd_down() {
    # Cancel every job first: slurmstepd and the job's processes outlive slurmd by design, and a test cluster
    # that is "down" must not leave sleeping jobs behind.
    if [[ -n $(recorded_pid slurmctld) ]] && ctld_answers >/dev/null 2>&1; then
        local jobs i
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [[ -n ${jobs// /} ]]; then
            say "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 150; i++)); do
                [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
    fi
    stop_node_slurmds
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon slurmdbd
    stop_daemon mariadbd
    stop_daemon munged
    network_down
    rm -f "$RUN_DIR/accounting-configured"
    say "down"
}

cmd_status() {
    local name pid ok=0 configured nodes i
    configured=$(cat "$RUN_DIR/accounting-configured" 2>/dev/null || echo "not up")
    nodes=$(recorded_nodes)
    echo "cluster: $CLUSTER  node: $NODE  accounting configured: $configured  compute nodes in namespaces: $nodes"
    for name in munged mariadbd slurmdbd slurmctld slurmd; do
        pid=$(recorded_pid "$name")
        if [[ -n $pid ]]; then
            echo "  $name: running (pid $pid, started by cluster.sh)"
        elif [[ -n $(foreign_pid "$name") ]]; then
            echo "  $name: running (pid $(foreign_pid "$name"), not started by cluster.sh)"
        else
            echo "  $name: stopped"
        fi
    done
    if ctld_answers >/dev/null 2>&1; then
        echo "slurmctld answers; node $NODE is '$(node_state)'"
        sinfo -o '  %P %a %l %D %T %G %f' 2>/dev/null || true
        node_usable || ok=1
        # slurmctld notices a dead slurmd only after SlurmdTimeout (300 s) and keeps showing the node idle.
        [[ -n $(recorded_pid slurmd) || -n $(foreign_pid slurmd) ]] || { echo "slurmd is not running"; ok=1; }
        for ((i = 1; i <= nodes; i++)); do
            pid=$(recorded_pid "slurmd-pfnode$i" slurmd)
            echo "  pfnode$i: '$(node_state "pfnode$i")', slurmd ${pid:-not running}, namespace pf-node$i, $SUBNET.$((10 + i))"
            [[ -n $pid ]] && node_usable "pfnode$i" || ok=1
        done
    else
        echo "slurmctld does not answer"
        ok=1
    fi
    if dbd_answers >/dev/null 2>&1; then
        echo "accounting: slurmdbd answers (sacct works)"
    else
        echo "accounting: not available (sacct fails)"
    fi
    return $ok
}

cmd_accounting() {
    local configured
    configured=$(cat "$RUN_DIR/accounting-configured" 2>/dev/null || echo "")
    case "${1-}" in
        on)
            [[ $configured == yes ]] || die "the cluster is not up with accounting; run \`cluster.sh up\`"
            start_munged
            start_mariadbd
            start_slurmdbd
            say "accounting on: slurmdbd answers"
            ;;
        off)
            [[ -n $(recorded_pid slurmdbd) ]] || { say "slurmdbd is not running"; return 0; }
            stop_daemon slurmdbd
            say "accounting off: slurmdbd stopped (slurmctld keeps running and queues accounting records)"
            ;;
        *) die "usage: cluster.sh accounting on|off" ;;
    esac
}

main() {
    local cmd=${1-}
    shift || true
    install -d -m 755 "$LOG_DIR" 2>/dev/null || true
    if [[ $cmd == up || $cmd == down || $cmd == accounting ]]; then
        # One change at a time: two `up`s at once (parallel CI steps) would start every daemon twice.
        install -d -m 755 "$RUN_DIR"
        exec 9>"$RUN_DIR/lock"
        flock -w 300 9 || die "another cluster.sh is still running after 300 s"
    fi
    case "$cmd" in
        up) cmd_up "$@" ;;
        down) cmd_down ;;
        status) cmd_status ;;
        accounting) cmd_accounting "$@" ;;
        *) die "usage: cluster.sh up [--no-accounting] [--nodes N] | down | status | accounting on|off" ;;
    esac
}

main "$@"
