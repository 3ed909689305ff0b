#!/usr/bin/env bash
# Installs what Pushbox needs and is missing, then makes sure its servers answer.
# Safe to run again: it installs nothing that is there and starts nothing that runs.
#   scripts/install.sh        what `make up` needs
#   scripts/install.sh test   and what `make test` needs too: Debian's chromium, the
#                             browser the console's tests drive (through Playwright)
#   - Debian packages: python3-venv, nginx, and MariaDB, RabbitMQ, Redis when their
#     servers are neither installed nor answering on their ports
#   - the Python packages, pinned in pyproject.toml, into .venv
#   - MariaDB, RabbitMQ and Redis started when nothing answers on their ports
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install: $*"; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

MYSQL_PORT=${PUSH_MYSQL_PORT:-3306}
RABBIT_PORT=5672
REDIS_PORT=6379

need=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
{ answers "$MYSQL_PORT" || [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ]; } || need+=(mariadb-server)
{ answers $RABBIT_PORT || [ -x /usr/sbin/rabbitmq-server ]; } || need+=(rabbitmq-server)
{ answers $REDIS_PORT || command -v redis-server >/dev/null; } || need+=(redis-server)
if [ "${1:-}" = test ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need[*]}; run as root, or: sudo apt-get install -y ${need[*]}"
    exit 1
  fi
  say "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # services are started below, not by the packages (there may be no init system)
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt_log=$(mktemp /tmp/pushbox-apt.XXXXXX)
  # packages that try to start their service are refused (policy-rc.d): expected
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
      >"$apt_log" 2>&1; then
    tail -30 "$apt_log"; say "apt-get failed (whole log: $apt_log)"; exit 1
  fi
  rm -f "$apt_log"
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# RabbitMQ node names (the cluster's pushbox-N@localhost) and the TLS test certificate
# name `localhost`: a machine where it does not resolve (a bare chroot has no
# /etc/hosts; an installed Debian does) gets the entry every Debian install writes
if ! getent hosts localhost >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    say "localhost does not resolve; as root add to /etc/hosts: 127.0.0.1 localhost"
    exit 1
  fi
  say "localhost does not resolve: adding it to /etc/hosts"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >> /etc/hosts
fi

# Python packages, reinstalled only when pyproject.toml changed
stamp=.venv/.pushbox-installed
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
if [ ! -f $stamp ] || [ pyproject.toml -nt $stamp ]; then
  say "installing Python packages into .venv"
  if ! .venv/bin/pip install --disable-pip-version-check -e '.[dev]' > .venv/pip.log 2>&1; then
    tail -30 .venv/pip.log; say "pip install failed (whole log: .venv/pip.log)"; exit 1
  fi
  touch $stamp
fi

# servers: start only what does not answer
wait_for() {  # port name seconds
  for _ in $(seq 1 "$3"); do answers "$1" && return 0; sleep 1; done
  say "$2 did not start on port $1"; return 1
}
if ! answers "$MYSQL_PORT"; then
  say "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  # --pidfile: match only our server, not a mariadbd that merely shares /proc (a chroot)
  start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/mysqld.pid \
    --exec /usr/sbin/mariadbd -- --user=mysql --pid-file=/run/mysqld/mysqld.pid
  wait_for "$MYSQL_PORT" MariaDB 60
fi
# Debian's MariaDB lets root in over its socket only; Pushbox's default is root with an
# empty password over TCP, so allow that when the socket says we are root.
if ! .venv/bin/python -c 'import pymysql; pymysql.connect(host="127.0.0.1", user="root", port='"$MYSQL_PORT"')' 2>/dev/null \
   && [ -z "${PUSH_MYSQL_PASSWORD:-}" ] && command -v mariadb >/dev/null \
   && mariadb -uroot -e 'SELECT 1' >/dev/null 2>&1; then
  say "allowing root over TCP with an empty password (a developer machine default)"
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
fi
# RabbitMQ keeps a file open for each device queue it writes to; with too few, a
# broadcast to thousands of devices thrashes and can crash the node (docs/capacity.md).
# Debian's systemd unit asks 65536; rabbitmq-server started by hand runs under su,
# whose pam_limits resets the soft limit to 1024, so give the rabbitmq user more.
RABBIT_FILES_WANTED=65536
rabbit_limits=/etc/security/limits.d/pushbox-rabbitmq.conf
if [ "$(id -u)" = 0 ] && [ -d /etc/security/limits.d ]; then
  # no more than this shell's hard limit: pam_limits may not raise it (no
  # CAP_SYS_RESOURCE in a container), and a refused setrlimit can fail su itself
  hard=$(ulimit -Hn)
  files=$RABBIT_FILES_WANTED
  [ "$hard" != unlimited ] && [ "$hard" -lt $files ] && files=$hard
  line="rabbitmq - nofile $files"
  if ! grep -qx "$line" $rabbit_limits 2>/dev/null; then
    say "letting RabbitMQ open $files files ($rabbit_limits)"
    printf '# written by Pushbox scripts/install.sh: RabbitMQ keeps a file open per device\n# queue it writes to, and su resets the soft limit to 1024\n%s\n' "$line" \
      > $rabbit_limits || say "could not write $rabbit_limits"
  fi
fi
if ! answers $RABBIT_PORT; then
  say "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for $RABBIT_PORT RabbitMQ 120
fi
beam=$(pgrep -u rabbitmq -o beam.smp || true)
if [ -n "$beam" ] && [ -r "/proc/$beam/limits" ]; then
  files=$(awk '/^Max open files/ {print $4}' "/proc/$beam/limits" 2>/dev/null || true)
  if [[ $files =~ ^[0-9]+$ ]] && [ "$files" -lt 10000 ]; then
    say "warning: RabbitMQ may open only $files files: a broadcast to more devices than"
    say "  that will crawl or crash it; start it again (rabbitmq-server, as root) to pick"
    say "  up $rabbit_limits, or run Pushbox on a node of its own: make cluster-up NODES=1"
  fi
fi
if ! answers $REDIS_PORT; then
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  # the campaign job queue lives here: an append-only file, and no eviction
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port $REDIS_PORT --save "" \
    --appendonly yes --appendfsync everysec --maxmemory-policy noeviction \
    --dir /var/lib/redis --logfile /var/log/redis/pushbox.log
  wait_for $REDIS_PORT Redis 30
fi
