#!/usr/bin/env bash
# Install the real servers the test suite talks to, WITHOUT installing any of
# them as a system service: Debian's postfix (unpacked, never configured as the
# system MTA), dovecot-core (postfix's SASL for the AUTH tests), the proxies
# of the proxy tests (v2ray: SOCKS5, SOCKS4a, HTTP CONNECT; dante-server and
# tinyproxy-bin: faithful refusals) and redis-server (the broker of the Celery
# example's test, examples/celery_pool).
#
# What it does (run as root on Debian 12; safe to run any number of times):
#   1. apt-get update
#   2. apt-get download postfix, dpkg-deb -x it into a private prefix
#      ($SMTPCLIENT_POSTFIX_ROOT, default /opt/smtpclient-postfix).  The
#      package's maintainer scripts never run: no /etc/postfix, no service,
#      nothing listening on port 25.  Skipped when the prefix already holds
#      the candidate version.
#   3. apt-get install --no-install-recommends the shared-library packages the
#      unpacked binaries link against (the lib* entries of the package's
#      Depends, e.g. libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3;
#      --no-upgrade: libraries already present are left as they are), then
#      checks with ldd that every binary resolves all of its libraries.
#      postfix's own libpostfix-*.so live in $ROOT/usr/lib/postfix: point
#      LD_LIBRARY_PATH there to run the binaries (tests/_postfix.py does).
#   4. Creates the unprivileged mail_owner account "smtpclient-pf" (system
#      user, own group, no home, no login shell) and the setgid_group
#      "smtpclient-pd", if missing.
#   5. apt-get install --no-install-recommends dovecot-core v2ray
#      dante-server tinyproxy-bin redis-server.  Their maintainer scripts
#      must not start system services: while they are installed, a
#      policy-rc.d that refuses every service start is put in place unless
#      one is already there, and on a systemd machine their units are
#      disabled and stopped afterwards.
#      The fixtures run their own processes with private configurations
#      (`dovecot -c`, `v2ray -config`, `danted -f`, `tinyproxy -c`,
#      `redis-server --port ...` with every setting on its command line);
#      nothing under /etc is read.
#
# Prints one summary line at the end.  Exits non-zero on any failure.
set -euo pipefail

ROOT="${SMTPCLIENT_POSTFIX_ROOT:-/opt/smtpclient-postfix}"
MAIL_OWNER="smtpclient-pf"
SETGID_GROUP="smtpclient-pd"
STAMP="$ROOT/.smtpclient-postfix-version"

export DEBIAN_FRONTEND=noninteractive
log() { printf 'install_servers: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"
case "$ROOT" in
    /*) ;;
    *) die "SMTPCLIENT_POSTFIX_ROOT must be an absolute path (got '$ROOT')" ;;
esac
[ "$ROOT" != "/" ] || die "SMTPCLIENT_POSTFIX_ROOT must not be /"

WORK="$(mktemp -d /tmp/smtpclient-postfix-install.XXXXXX)"
own_policy=""  # a policy-rc.d this script put in place (step 4), removed on exit
cleanup() {
    rm -rf "$WORK"
    if [ -n "$own_policy" ]; then rm -f "$own_policy"; fi
}
trap cleanup EXIT

pkgs_before="$WORK/pkgs-before"
dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort -u >"$pkgs_before"

log "apt-get update"
apt-get update -qq || die "apt-get update failed"

# --- 1. fetch and unpack postfix ---------------------------------------------
candidate="$(apt-cache policy postfix | awk '/Candidate:/ {print $2; exit}')"
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    die "no installation candidate for postfix"
fi

unpacked="already present"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$candidate" ] \
        && [ -x "$ROOT/usr/lib/postfix/sbin/master" ] && [ -x "$ROOT/usr/sbin/smtp-sink" ]; then
    log "postfix $candidate already unpacked in $ROOT"
else
    log "downloading postfix $candidate"
    # apt drops privileges to _apt for downloads; let it write here.
    if id _apt >/dev/null 2>&1; then chown _apt "$WORK"; fi
    (cd "$WORK" && apt-get download -qq "postfix=$candidate") || die "apt-get download postfix failed"
    deb="$(find "$WORK" -maxdepth 1 -name 'postfix_*.deb' | head -n1)"
    [ -n "$deb" ] || die "downloaded postfix .deb not found"
    dpkg-deb -f "$deb" Depends >"$WORK/depends"
    staging="$ROOT.staging.$$"
    rm -rf "$staging"
    mkdir -p "$staging"
    dpkg-deb -x "$deb" "$staging" || die "dpkg-deb -x failed"
    cp "$WORK/depends" "$staging/.smtpclient-postfix-depends"
    printf '%s\n' "$candidate" >"$staging/.smtpclient-postfix-version"
    mkdir -p "$(dirname "$ROOT")"
    rm -rf "$ROOT"
    mv "$staging" "$ROOT"
    unpacked="unpacked now"
fi

# --- 2. shared libraries -----------------------------------------------------
# lib* packages from the Depends line (first alternative, version dropped).
mapfile -t libpkgs < <(
    tr ',' '\n' <"$ROOT/.smtpclient-postfix-depends" \
        | sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' \
        | grep -E '^lib' | sort -u
)
[ "${#libpkgs[@]}" -gt 0 ] || die "could not determine postfix's library dependencies"
log "apt-get install ${libpkgs[*]}"
# --no-upgrade: never upgrade an already installed library as a side effect.
apt-get install -y -qq --no-install-recommends --no-upgrade "${libpkgs[@]}" >/dev/null \
    || die "apt-get install ${libpkgs[*]} failed"

export LD_LIBRARY_PATH="$ROOT/usr/lib/postfix"
missing=""
checked=0
for f in "$ROOT"/usr/sbin/* "$ROOT"/usr/lib/postfix/sbin/* "$ROOT"/usr/lib/postfix/*.so; do
    [ -f "$f" ] || continue
    # Only ELF files (the directories also hold shell/perl scripts).
    [ "$(head -c4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    checked=$((checked + 1))
    out="$(ldd "$f" 2>&1)" || die "ldd $f failed: $out"
    if grep -q 'not found' <<<"$out"; then
        missing="$missing"$'\n'"$f:"$'\n'"$(grep 'not found' <<<"$out")"
    fi
done
[ "$checked" -gt 20 ] || die "only $checked ELF files found under $ROOT; unpack looks broken"
[ -z "$missing" ] || die "unresolved shared libraries:$missing"
"$ROOT/usr/sbin/postconf" -d mail_version >/dev/null 2>&1 \
    || die "$ROOT/usr/sbin/postconf does not run"

# --- 3. accounts -------------------------------------------------------------
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/bin/false
accounts=""
if getent group "$SETGID_GROUP" >/dev/null; then
    accounts="$accounts group $SETGID_GROUP existed;"
else
    groupadd --system "$SETGID_GROUP" || die "groupadd $SETGID_GROUP failed"
    accounts="$accounts group $SETGID_GROUP created;"
fi
if getent passwd "$MAIL_OWNER" >/dev/null; then
    accounts="$accounts user $MAIL_OWNER existed"
else
    if getent group "$MAIL_OWNER" >/dev/null; then
        group_opt=(--gid "$MAIL_OWNER")
    else
        group_opt=(--user-group)
    fi
    useradd --system "${group_opt[@]}" --no-create-home --home-dir /nonexistent \
        --shell "$nologin" --comment "smtpclient test postfix" "$MAIL_OWNER" \
        || die "useradd $MAIL_OWNER failed"
    accounts="$accounts user $MAIL_OWNER (+ group $MAIL_OWNER) created"
fi
owner_gid="$(id -g "$MAIL_OWNER")"
sgid_gid="$(getent group "$SETGID_GROUP" | cut -d: -f3)"
[ "$owner_gid" != "$sgid_gid" ] || die "$MAIL_OWNER's primary group must differ from $SETGID_GROUP"

# --- 4. dovecot-core, the proxies and redis-server ---------------------------
SERVICE_PKGS=(dovecot-core v2ray dante-server tinyproxy-bin redis-server)
missing=()
for pkg in "${SERVICE_PKGS[@]}"; do
    dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    dovecot_state="${SERVICE_PKGS[*]} already installed"
else
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# smtpclient install_servers.sh: no service starts during install\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy="$policy"
    fi
    log "apt-get install ${missing[*]}"
    status=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
    if [ -n "$own_policy" ]; then rm -f "$own_policy"; own_policy=""; fi
    [ "$status" -eq 0 ] || die "apt-get install ${missing[*]} failed"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now dovecot.service dovecot.socket v2ray.service danted.service \
            redis-server.service >/dev/null 2>&1 || true
    fi
    dovecot_state="${missing[*]} installed now (no system service started)"
fi
[ -x /usr/sbin/dovecot ] || die "/usr/sbin/dovecot is missing after installing dovecot-core"
dovecot_version="$(/usr/sbin/dovecot --version 2>/dev/null)" || die "/usr/sbin/dovecot does not run"
for binary in v2ray danted tinyproxy redis-server; do
    command -v "$binary" >/dev/null || die "$binary is missing after installing the proxies and redis"
done

# --- summary -----------------------------------------------------------------
pkgs_after="$WORK/pkgs-after"
dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort -u >"$pkgs_after"
new_pkgs="$(comm -13 "$pkgs_before" "$pkgs_after" | tr '\n' ' ' | sed 's/ $//')"
printf 'install_servers: postfix %s %s in %s (binaries need LD_LIBRARY_PATH=%s); %s (%s); apt packages newly installed: %s;%s\n' \
    "$candidate" "$unpacked" "$ROOT" "$ROOT/usr/lib/postfix" "$dovecot_state" "$dovecot_version" \
    "${new_pkgs:-none}" "$accounts"
