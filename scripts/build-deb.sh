#!/usr/bin/env bash
# Builds lethe_<version>_<arch>.deb from this checkout and checks it with
# lintian (errors fail the build):
#
#   scripts/build-deb.sh              # → target/debian/lethe_<version>_amd64.deb
#   scripts/build-deb.sh --no-lintian # build only
#
# The package: /usr/bin/lethe (release build, stripped), the hardened systemd
# unit (lib/systemd/system/lethe.service, ExecStart=/usr/bin/lethe),
# /etc/lethe/lethe.toml as a conffile (from deploy/lethe.example.toml), the
# `lethe` system user and its state directories (postinst), man pages and
# bash/zsh/fish completions generated from the CLI itself (`lethe
# generate-assets`), the deploy/ files under /usr/share/doc/lethe/examples.
# Depends are computed by dpkg-shlibdeps from the binary (RocksDB, libc…)
# plus the PostgreSQL client (pg_dump, psql).
#
# Environment: CARGO_TARGET_DIR (default target/), LETHE_DEB_OUT (where the
# .deb goes, default $CARGO_TARGET_DIR/debian).
set -euo pipefail
cd "$(dirname "$0")/.."

lintian=1
case "${1:-}" in
--no-lintian) lintian=0 ;;
"") ;;
*) echo "build-deb.sh: unknown argument $1; use --no-lintian or nothing" >&2; exit 2 ;;
esac

say() { echo "build-deb.sh: $*" >&2; }
die() { say "$*"; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps fakeroot; do
    command -v "$tool" >/dev/null || die "$tool not found; apt-get install dpkg-dev fakeroot"
done

target="${CARGO_TARGET_DIR:-target}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
arch="$(dpkg --print-architecture)"
out="${LETHE_DEB_OUT:-$target/debian}"
[[ -n "$version" ]] || die "no version in Cargo.toml"

say "cargo build --release --locked"
cargo build --release --locked --bin lethe >&2
bin="$target/release/lethe"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"

# Files.
install -D -m 0755 "$bin" "$root/usr/bin/lethe"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/lethe"
install -d -m 0755 "$root/lib/systemd/system"
sed 's#/usr/local/bin/lethe#/usr/bin/lethe#g' systemd/lethe.service >"$root/lib/systemd/system/lethe.service"
chmod 0644 "$root/lib/systemd/system/lethe.service"
grep -q '^ExecStart=/usr/bin/lethe ' "$root/lib/systemd/system/lethe.service" ||
    die "systemd/lethe.service: ExecStart no longer names /usr/local/bin/lethe"
install -D -m 0644 deploy/lethe.example.toml "$root/etc/lethe/lethe.toml" # postinst: 0640 root:lethe

"$bin" generate-assets --out "$work/assets" >&2
install -d -m 0755 "$root/usr/share/man/man1"
for page in "$work"/assets/man/*.1; do
    gzip -9n -c "$page" >"$root/usr/share/man/man1/$(basename "$page").gz"
done
chmod 0644 "$root"/usr/share/man/man1/*.gz
install -D -m 0644 "$work/assets/completions/lethe" "$root/usr/share/bash-completion/completions/lethe"
install -D -m 0644 "$work/assets/completions/_lethe" "$root/usr/share/zsh/vendor-completions/_lethe"
install -D -m 0644 "$work/assets/completions/lethe.fish" "$root/usr/share/fish/vendor_completions.d/lethe.fish"

doc="$root/usr/share/doc/lethe"
install -d -m 0755 "$doc/examples/alerts" "$doc/examples/grafana"
install -m 0644 README.md "$doc/README.md"
gzip -9n "$doc/README.md"
install -m 0644 deploy/README.md "$doc/examples/README.md"
install -m 0644 deploy/vector.toml deploy/bucket-policy.json "$doc/examples/"
install -m 0644 deploy/alerts/*.yaml "$doc/examples/alerts/"
install -m 0644 deploy/grafana/*.json "$doc/examples/grafana/"
commit="$("$bin" --version | sed -n 's/.*(commit \(.*\))/\1/p')"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lethe
Source: https://github.com/lethe-backup/lethe

Files: *
Copyright: 2026 The Lethe developers
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 can be
 found in /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$doc/copyright"
cat >"$work/changelog" <<EOF
lethe ($version) unstable; urgency=medium

  * Built from commit $commit.

 -- Lethe developers <dev@lethe.invalid>  $(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
EOF
gzip -9n -c "$work/changelog" >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Depends: the shared libraries the binary links (dpkg-shlibdeps), and the
# PostgreSQL client for pg_dump/psql.
mkdir -p "$work/shlibs/debian"
printf 'Source: lethe\n\nPackage: lethe\nArchitecture: any\n' >"$work/shlibs/debian/control"
shlibs="$(cd "$work/shlibs" && dpkg-shlibdeps -O "$root/usr/bin/lethe" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[[ -n "$shlibs" ]] || die "dpkg-shlibdeps found no dependencies for the binary"

install -d -m 0755 "$root/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: lethe
Version: $version
Architecture: $arch
Maintainer: Lethe developers <dev@lethe.invalid>
Installed-Size: $size
Depends: $shlibs, adduser, postgresql-client
Section: admin
Priority: optional
Homepage: https://github.com/lethe-backup/lethe
Description: PostgreSQL backups that keep erased people erased
 Lethe is a backup daemon for PostgreSQL: snapshots (or continuous capture
 from a logical replication slot) go age-encrypted into EU S3-compatible
 storage that forgets them after 35 days, and every restore streams the
 rows through a filter that drops each data subject on an erasure list,
 and every row that references them.
 .
 It keeps a hash-chained evidence log of restores, drills, prunes and
 erasures, runs scheduled restore drills, and serves Prometheus metrics.
EOF
echo "/etc/lethe/lethe.toml" >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = "configure" ]; then
    install -d -m 0700 /var/lib/lethe
    if ! getent passwd lethe >/dev/null; then
        adduser --system --group --home /var/lib/lethe --no-create-home \
            --shell /usr/sbin/nologin --gecos "Lethe backup daemon" lethe >/dev/null
    fi
    chown lethe:lethe /var/lib/lethe
    chown root:lethe /etc/lethe /etc/lethe/lethe.toml
    chmod 0750 /etc/lethe
    chmod 0640 /etc/lethe/lethe.toml
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
# Not enabled or started: edit /etc/lethe/lethe.toml first, then
# `systemctl enable --now lethe`.
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = "remove" ]; then
    deb-systemd-invoke stop lethe.service >/dev/null || true
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "purge" ]; then
    # The erasure list lives in /var/lib/lethe: purging removes it. The
    # repository in storage (snapshots, journal, evidence) is not touched.
    rm -rf /var/lib/lethe
    if getent passwd lethe >/dev/null && command -v deluser >/dev/null; then
        deluser --quiet --system lethe >/dev/null 2>&1 || true
    fi
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb="$out/lethe_${version}_${arch}.deb"
fakeroot dpkg-deb --build -Zxz "$root" "$deb" >&2
say "built $deb ($(du -h "$deb" | cut -f1))"

if ((lintian)); then
    command -v lintian >/dev/null || die "lintian not found; apt-get install lintian (or pass --no-lintian)"
    say "lintian $deb"
    # Errors fail; warnings and notes are shown.
    lintian --fail-on error --tag-display-limit 0 "$deb" >&2
fi
echo "$deb"
