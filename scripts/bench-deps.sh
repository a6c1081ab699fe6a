#!/usr/bin/env sh
# The proxy benchmarks' peers (nginx and HAProxy from Debian's packages), taskset, and valgrind
# (callgrind counts the proxy's instructions per request).
# Installs what is missing when run as root; otherwise says what to install and goes on
# (the benchmark prints a note in place of a missing row).
need=""
command -v nginx >/dev/null 2>&1 || need="$need nginx-light"
command -v haproxy >/dev/null 2>&1 || need="$need haproxy"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "bench: installing$need" >&2
  apt-get update -qq && apt-get install -y -qq $need >/dev/null || echo "bench: could not install$need" >&2
else
  echo "bench: missing$need (apt-get install$need); those rows are left out" >&2
fi
exit 0
