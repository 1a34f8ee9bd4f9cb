# shellcheck shell=bash
# Sourced by the continuous-capture benchmarks: wait_event LOG EVENT N SECS PID
# waits until the daemon's JSON log LOG holds N lines of EVENT, and fails
# (printing the log's tail) when the daemon PID exits or SECS pass first.
count_event() { grep -c "\"event\":\"$2\"" "$1" || true; }
wait_event() {
  local log=$1 event=$2 n=$3 secs=$4 pid=$5 end=$((SECONDS + $4))
  until (( $(count_event "$log" "$event") >= n )); do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; exit 1; }
    ((SECONDS < end)) || { echo "no $event in $secs s" >&2; exit 1; }
    sleep 0.5
  done
}
