#!/usr/bin/env bash
# A single-node Trino on 127.0.0.1 for the tests, CI and a developer's own SQL:
#   bash scripts/trino.sh download   fetch Trino from Maven Central into the cache (once; nothing if there)
#   bash scripts/trino.sh start      download if needed, configure, start, wait until it answers; prints its URL
#   bash scripts/trino.sh status     "running at http://127.0.0.1:PORT" (exit 0) or "not running" (exit 1)
#   bash scripts/trino.sh stop
#   bash scripts/trino.sh cli [ARGS]  the official Trino CLI (downloaded once, 18 MB) on the running server, e.g.
#                                     bash scripts/trino.sh cli --timezone=Asia/Kolkata --catalog hive --execute '...'
#
# Trino 476 (the last release with tarballs on Maven Central, and the one ibis 10.8 tests against) runs on a
# Java 24+ JDK: $TAMS_TRINO_JAVA_HOME, else $JAVA_HOME, else the newest JDK in /usr/lib/jvm (e.g. Temurin 25).
# Maven Central has no 476 zip of the PostgreSQL connector, so the whole server tarball (0.8 GB) is fetched
# once and trimmed to the connectors we use: 0.4 GB in the cache. `download` fetches the CLI too (the executable jar,
# trino-cli-476-executable.jar), so that the tests can run users' own client.
#
# Environment (all optional):
#   TAMS_TRINO_CACHE   where the server is installed (default ${XDG_CACHE_HOME:-~/.cache}/tams-analytics)
#   TAMS_TRINO_HOME    this instance's config, data, logs and port (default $TAMS_TRINO_CACHE/trino-run)
#   TAMS_TRINO_PORT    HTTP port (default: a free one, chosen at start)
#   TAMS_TRINO_HEAP    JVM heap (default 4G: 2 cores and 24 GiB shared with other work)
#   TAMS_TRINO_JIT     full (default) or quick: C1 only (-XX:TieredStopAtLevel=1), far less compiling for a test
#                      session's many short queries on small data; the benchmarks keep full
#   TAMS_MAVEN_URL     Maven repository (default https://repo1.maven.org/maven2)
#
# Catalogs: `hive` (Hive connector with a file metastore, reading local files: `local:///abs/path`), and any
# created at run time with CREATE CATALOG (catalog.management=dynamic): the tests add `vast` (PostgreSQL, the
# stand-in for VAST's connector) and `archive`; `CREATE CATALOG scratch USING memory` gives a scratch one.
# Exit codes: 0 done; 1 Trino did not start (the log's tail is printed); 2 it cannot be had here (no download,
# no Java 24+); 64 usage.
set -euo pipefail

VERSION=476
MIN_JAVA=24
CACHE=${TAMS_TRINO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tams-analytics}
SERVER=$CACHE/trino-server-$VERSION
HOME_DIR=${TAMS_TRINO_HOME:-$CACHE/trino-run}
case $HOME_DIR in /*) ;; *) HOME_DIR=$PWD/$HOME_DIR ;; esac
MAVEN=${TAMS_MAVEN_URL:-https://repo1.maven.org/maven2}
ARTIFACT=io/trino/trino-server/$VERSION/trino-server-$VERSION.tar.gz
CLI_ARTIFACT=io/trino/trino-cli/$VERSION/trino-cli-$VERSION-executable.jar
CLI_JAR=$CACHE/trino-cli-$VERSION.jar
# the connectors kept (geospatial: the PostgreSQL connector needs its Geometry type)
PLUGINS="memory hive postgresql geospatial"
START_TIMEOUT=${TAMS_TRINO_START_TIMEOUT:-240}

say() { echo "trino.sh: $*" >&2; }
cannot() { say "$*"; exit 2; }

download() {
  [ "$(cat "$SERVER/.installed" 2>/dev/null)" = "$PLUGINS" ] && return 0
  mkdir -p "$CACHE"
  local tarball=$CACHE/trino-server-$VERSION.tar.gz m2=$HOME/.m2/repository/$ARTIFACT
  if [ -f "$m2" ]; then
    tarball=$m2  # already in the local Maven repository
  elif [ ! -f "$tarball" ]; then
    say "downloading Trino $VERSION from $MAVEN (0.8 GB, once) ..."
    local t0=$SECONDS
    if command -v curl >/dev/null; then
      fetch "$ARTIFACT" "$tarball"
    elif command -v mvn >/dev/null; then
      mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        -Dartifact="io.trino:trino-server:$VERSION:tar.gz" -DoutputDirectory="$CACHE" || cannot "mvn could not fetch $ARTIFACT"
    else
      cannot "neither curl nor mvn is installed: cannot download Trino"
    fi
    say "downloaded $(du -m "$tarball" | cut -f1) MB in $((SECONDS - t0)) s"
  fi
  say "unpacking the server and the $PLUGINS connectors into $SERVER ..."
  local tmp
  tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
  # whole archive: plugins share files through hard links, so a partial extraction would miss some
  tar xzf "$tarball" -C "$tmp" || { rm -rf "$tmp"; cannot "cannot unpack $tarball"; }
  local root=$tmp/trino-server-$VERSION keep
  for keep in "$root"/plugin/*; do
    case " $PLUGINS " in *" $(basename "$keep") "*) ;; *) rm -rf "$keep" ;; esac
  done
  echo "$PLUGINS" > "$root/.installed"
  rm -rf "$SERVER"
  mv "$root" "$SERVER"
  rm -rf "$tmp"
  [ "$tarball" = "$CACHE/trino-server-$VERSION.tar.gz" ] && rm -f "$tarball"
  say "installed in $SERVER ($(du -sm "$SERVER" | cut -f1) MB)"
}

fetch() {  # $1 artifact path in the Maven repository, $2 file: download with curl, its checksum checked
  local artifact=$1 file=$2 want got
  curl -fsSL --retry 3 -o "$file.part" "$MAVEN/$artifact" || { rm -f "$file.part"; cannot "download failed: $MAVEN/$artifact"; }
  want=$(curl -fsSL --retry 3 "$MAVEN/$artifact.sha1" | cut -c1-40) || { rm -f "$file.part"; cannot "cannot fetch $MAVEN/$artifact.sha1"; }
  got=$(sha1sum "$file.part" | cut -c1-40)
  [ "$want" = "$got" ] || { rm -f "$file.part"; cannot "checksum mismatch for $artifact ($got, expected $want)"; }
  mv "$file.part" "$file"
}

download_cli() {
  [ -f "$CLI_JAR" ] && return 0
  mkdir -p "$CACHE"
  local m2=$HOME/.m2/repository/$CLI_ARTIFACT
  if [ -f "$m2" ]; then
    cp "$m2" "$CLI_JAR"
  elif command -v curl >/dev/null; then
    say "downloading the Trino $VERSION CLI from $MAVEN (18 MB, once) ..."
    fetch "$CLI_ARTIFACT" "$CLI_JAR"
  elif command -v mvn >/dev/null; then
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
      -Dartifact="io.trino:trino-cli:$VERSION:jar:executable" -DoutputDirectory="$CACHE" || cannot "mvn could not fetch $CLI_ARTIFACT"
    mv "$CACHE/trino-cli-$VERSION-executable.jar" "$CLI_JAR"
  else
    cannot "neither curl nor mvn is installed: cannot download the Trino CLI"
  fi
}

cli() {  # the official CLI, on the running server unless --server is given
  download_cli
  local java port arg server=()
  java=$(find_java) || cannot "no Java $MIN_JAVA+ JDK to run the Trino CLI: set TAMS_TRINO_JAVA_HOME"
  for arg in "$@"; do
    case $arg in --server|--server=*) server=(none) ;; esac
  done
  if [ ${#server[@]} -eq 0 ]; then
    port=$(port_of)
    { [ -n "$port" ] && ready "$port"; } || cannot "no Trino running here (bash scripts/trino.sh start), and no --server given"
    server=(--server "http://127.0.0.1:$port")
  else
    server=()
  fi
  # a client's short run: the quick compiler and a small collector take a third less CPU to start
  exec "$java/bin/java" --enable-native-access=ALL-UNNAMED -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -jar "$CLI_JAR" "${server[@]}" "$@"
}

java_major() {  # the feature version of the JDK at $1 (0 if none)
  [ -x "$1/bin/java" ] || { echo 0; return; }
  "$1/bin/java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p' | grep . || echo 0
}

find_java() {
  local candidate
  for candidate in "${TAMS_TRINO_JAVA_HOME:-}" "${JAVA_HOME:-}" $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    candidate=${candidate%/}
    [ -n "$candidate" ] && [ "$(java_major "$candidate")" -ge "$MIN_JAVA" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

port_of() { cat "$HOME_DIR/port" 2>/dev/null || true; }

ready() {  # true when the server on port $1 says it has started
  curl -fsS --max-time 2 "http://127.0.0.1:$1/v1/info" 2>/dev/null | grep -q '"starting":false'
}

launcher() {
  "$SERVER/bin/launcher" --etc-dir="$HOME_DIR/etc" --data-dir="$HOME_DIR/data" "$@"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

configure() {  # $1 port; writes $HOME_DIR/etc
  local port=$1 heap=${TAMS_TRINO_HEAP:-4G} etc=$HOME_DIR/etc jit=
  case ${TAMS_TRINO_JIT:-full} in
    full) ;;
    quick) jit=-XX:TieredStopAtLevel=1 ;;
    *) echo "trino.sh: TAMS_TRINO_JIT is full or quick, not ${TAMS_TRINO_JIT}" >&2; exit 64 ;;
  esac
  mkdir -p "$etc/catalog" "$HOME_DIR/data" "$HOME_DIR/metastore"
  cat > "$etc/node.properties" <<EOF
node.environment=tams_test
node.id=tams-$(basename "$HOME_DIR")-$port
node.data-dir=$HOME_DIR/data
node.bind-ip=127.0.0.1
node.internal-address=127.0.0.1
EOF
  cat > "$etc/config.properties" <<EOF
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$port
discovery.uri=http://127.0.0.1:$port
catalog.management=dynamic
# 2 cores shared with other work: few threads, memory well inside the heap
task.concurrency=2
task.max-worker-threads=4
query.max-memory=1GB
query.max-memory-per-node=1GB
memory.heap-headroom-per-node=1GB
# system.runtime.queries keeps this many finished queries (the benchmark reads their planning times)
query.max-history=1000
EOF
  cat > "$etc/jvm.config" <<EOF
-server
-Xmx$heap
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-XX:+EnableDynamicAgentLoading
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
-Duser.timezone=UTC
EOF
  if [ -n "$jit" ]; then echo "$jit" >> "$etc/jvm.config"; fi
  echo "io.trino=WARN" > "$etc/log.properties"
  # Parquet on the local file system (tams-analytics export), external tables in a file metastore
  cat > "$etc/catalog/hive.properties" <<EOF
connector.name=hive
hive.metastore=file
hive.metastore.catalog.dir=local://$HOME_DIR/metastore
fs.native-local.enabled=true
local.location=/
hive.parquet.time-zone=UTC
hive.timestamp-precision=MICROSECONDS
EOF
}

log_tails() {  # the end of the launcher's log (the JVM's own output: what failed before logging began) and the server's
  local log
  for log in "$HOME_DIR/data/var/log/launcher.log" "$HOME_DIR/data/var/log/server.log"; do
    if [ -s "$log" ]; then
      echo "--- $log (its first errors, then its end)" >&2
      grep -m 8 -E 'already in use|BindException|ERROR|Exception:|Caused by|Error:' "$log" | cut -c1-400 >&2 || true
      echo "..." >&2
      tail -n 12 "$log" | cut -c1-400 >&2
    else
      echo "--- $log: empty or missing" >&2
    fi
  done
}

start() {
  download
  local java port t0=$SECONDS
  java=$(find_java) || cannot "no Java $MIN_JAVA+ JDK (Trino $VERSION needs one): set TAMS_TRINO_JAVA_HOME, or install e.g. Temurin 25 in /usr/lib/jvm"
  port=$(port_of)
  if [ -n "$port" ] && ready "$port"; then
    echo "http://127.0.0.1:$port"
    say "already running at http://127.0.0.1:$port"
    return 0
  fi
  launcher stop >/dev/null 2>&1 || true
  port=${TAMS_TRINO_PORT:-$(free_port)}
  configure "$port"
  echo "$port" > "$HOME_DIR/port"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 4096 ] || say "only $(ulimit -n) open files allowed; Trino wants 4096+"
  launcher --jvm-dir="$java" start >/dev/null
  while ! ready "$port"; do
    if ! launcher status >/dev/null 2>&1; then
      say "Trino exited during start-up; the end of its logs:"
      log_tails
      exit 1
    fi
    if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
      say "Trino did not answer within ${START_TIMEOUT} s; stopping it. The end of its logs:"
      log_tails
      launcher kill >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 0.5
  done
  say "Trino $VERSION (Java $(java_major "$java"), $java) ready at http://127.0.0.1:$port in $((SECONDS - t0)) s; home $HOME_DIR"
  echo "http://127.0.0.1:$port"
}

stop() {
  [ -d "$HOME_DIR/etc" ] && [ -x "$SERVER/bin/launcher" ] || { say "not running"; return 0; }
  launcher stop >/dev/null 2>&1 || launcher kill >/dev/null 2>&1 || true
  rm -f "$HOME_DIR/port"
  say "stopped"
}

status() {
  local port
  port=$(port_of)
  if [ -n "$port" ] && ready "$port"; then
    echo "running at http://127.0.0.1:$port"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  download) download; download_cli ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  cli) shift; cli "$@" ;;
  *) echo "usage: bash scripts/trino.sh download|start|stop|status|cli [ARGS]" >&2; exit 64 ;;
esac
