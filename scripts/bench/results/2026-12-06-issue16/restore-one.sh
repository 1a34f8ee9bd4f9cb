#!/bin/sh
# restore-pair: $1 = before|after; a fresh empty database each run
dropdb -h 127.0.0.1 -U postgres --if-exists lethe_pair_$1 && createdb -h 127.0.0.1 -U postgres lethe_pair_$1 || exit 3
exec /tmp/perf/bin/lethe-$1 --config /tmp/perf/pair/$1/lethe.toml restore latest --target postgres://postgres@127.0.0.1:5432/lethe_pair_$1 --jobs 2
