#!/usr/bin/env bash
# Packaging checks, run by .ci/run (as root on Debian 12): build the .deb
# with cargo deb, inspect it, install it, run the installed binary and its
# man page, verify the systemd user unit, remove the package again; then
# syntax-check the Homebrew formula and the LaunchAgent plist.
# Installs what it lacks (cargo-deb, man-db, ruby, python3, dpkg-dev).
# Prints `packaging: N passed, M failed` and exits 1 on any failure.
#
# PEERSPOOL_DEB_PROFILE: cargo profile of the packaged binary (default
# release; CI passes dev to reuse the test build and stay in its budget).
# Not for a developer machine: it installs and then removes the peerspool
# package system-wide.
set -uo pipefail
cd "$(dirname "$0")/.."

profile=${PEERSPOOL_DEB_PROFILE:-release}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skip() { echo "skip $*"; }
# check WHAT CMD...: runs CMD; shows its output tail when it fails.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else bad "$what"; printf '%s\n' "$out" | tail -n 8 | sed 's/^/     /'; fi
}
# systemd-analyze verify exits 0 on unknown keys and bad values, only
# warning: any output at all counts as a failure.
verify_unit() {
  local out
  out=$(systemd-analyze verify "$1" 2>&1) && [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
finish() {
  echo "packaging: $pass passed, $fail failed (${SECONDS}s)"
  [ "$fail" -eq 0 ] && exit 0 || exit 1
}
t_phase=$SECONDS
phase() { echo "-- $1 (+$((SECONDS - t_phase))s)"; t_phase=$SECONDS; }

# ---- tools ---------------------------------------------------------------
phase tools
is_root=false
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && is_root=true
need=()
command -v man >/dev/null || need+=(man-db)
command -v ruby >/dev/null || need+=(ruby)
command -v plutil >/dev/null || command -v python3 >/dev/null || need+=(python3)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev) # cargo deb's $auto depends
if [ ${#need[@]} -gt 0 ]; then
  if $is_root; then
    echo "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing ${need[*]} (not root: not installing)"
  fi
fi
if ! cargo deb --version >/dev/null 2>&1; then
  t0=$SECONDS
  cargo install cargo-deb --locked --quiet
  echo "cargo install cargo-deb: $((SECONDS - t0))s"
fi
check "cargo-deb available ($(cargo deb --version 2>/dev/null))" cargo deb --version

# ---- build, generate, package ----------------------------------------------
phase build
gen=target/packaging
case $profile in dev) bindir=target/debug ;; *) bindir=target/$profile ;; esac
if ! cargo build --locked --quiet --profile "$profile"; then
  bad "cargo build --profile $profile"
  finish
fi
bin=$bindir/peerspool
rm -rf "$gen" && mkdir -p "$gen"
check "generate man pages" "$bin" generate man --out "$gen/man"
check "gzip man pages" sh -c "gzip -9nf $gen/man/*.1"
for sh in bash zsh fish; do
  check "generate $sh completions" "$bin" generate completions "$sh" --out "$gen"
done
check "man pages render without warnings" sh -c "for p in $gen/man/*.1.gz; do MANWIDTH=80 man -l -P cat \$p >/dev/null 2>\$p.warn; done; ! cat $gen/man/*.warn | grep ."
rm -f "$gen"/man/*.warn
check "bash completions load" bash -c "source $gen/peerspool.bash && complete -p peerspool"

phase deb
rm -rf target/debian
if ! out=$(cargo deb --no-build --locked --profile "$profile" --fast 2>&1); then
  bad "cargo deb"
  printf '%s\n' "$out" | tail -n 8
  finish
fi
deb=$(ls target/debian/peerspool_*.deb 2>/dev/null | head -n 1)
[ -f "$deb" ] && ok "cargo deb: $deb ($(du -k "$deb" | cut -f1) KiB)" || { bad "cargo deb produced no .deb"; finish; }

contents=$(dpkg-deb -c "$deb")
for f in usr/bin/peerspool usr/lib/systemd/user/peerspool.service usr/share/man/man1/peerspool.1.gz \
  usr/share/man/man1/peerspool-send.1.gz usr/share/man/man1/peerspool-service-install.1.gz \
  usr/share/bash-completion/completions/peerspool usr/share/zsh/vendor-completions/_peerspool \
  usr/share/fish/vendor_completions.d/peerspool.fish usr/share/doc/peerspool/copyright; do
  check "deb contains /$f" grep -q " \./$f\$" <<<"$contents"
done
check "deb binary is executable (0755)" grep -q '^-rwxr-xr-x .* \./usr/bin/peerspool$' <<<"$contents"
check "deb synopsis fits one line" test "$(dpkg-deb -f "$deb" Description | head -n 1 | wc -c)" -le 80
check "deb Depends names tmux" sh -c "dpkg-deb -f '$deb' Depends | grep -qw tmux"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
check "deb Version is $version-1" test "$(dpkg-deb -f "$deb" Version)" = "$version-1"

# ---- install, use, remove ----------------------------------------------------
phase install
if $is_root; then
  export DEBIAN_FRONTEND=noninteractive
  # Docker images often exclude /usr/share/man from dpkg; the man check needs it.
  check "apt-get install ./$deb" apt-get install -y -qq --no-install-recommends \
    -o 'DPkg::Options::=--path-include=/usr/share/man/man1/peerspool*' "./$deb"
  check "dpkg knows peerspool $version" sh -c "dpkg-query -W -f='\${Version}' peerspool | grep -qx '$version-1'"
  check "installed peerspool --version" sh -c "/usr/bin/peerspool --version | grep -qx 'peerspool $version'"
  check "man peerspool" sh -c "MANWIDTH=80 man -P cat peerspool | tr -s ' ' | grep -q 'Keep a team of AI coding agents'"
  check "man peerspool-send" sh -c "MANWIDTH=80 man -P cat peerspool-send | tr -s ' ' | grep -q 'Enqueue a task for a peer'"
  check "man -w finds the packaged page" sh -c "man -w peerspool | grep -qx /usr/share/man/man1/peerspool.1.gz"
  check "tmux dependency installed" command -v tmux
  check "installed bash completion loads" bash -c "source /usr/share/bash-completion/completions/peerspool && complete -p peerspool"
  if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify (packaged user unit)" verify_unit /usr/lib/systemd/user/peerspool.service
    tmp=$(mktemp -d)
    HOME=$tmp /usr/bin/peerspool service install --dry-run --manager systemd >"$tmp/peerspool.service" 2>/dev/null
    check "systemd-analyze verify (service install's unit)" verify_unit "$tmp/peerspool.service"
    rm -rf "$tmp"
  else
    skip "systemd-analyze not available"
  fi
  check "apt-get remove peerspool" apt-get remove -y -qq peerspool
  check "binary gone after remove" test ! -e /usr/bin/peerspool
  check "unit gone after remove" test ! -e /usr/lib/systemd/user/peerspool.service
else
  skip "install/remove: needs root and apt-get"
fi

# ---- Homebrew formula, LaunchAgent -------------------------------------------
phase homebrew-launchd
if command -v ruby >/dev/null; then
  check "ruby -c packaging/homebrew/peerspool.rb" sh -c "ruby -c packaging/homebrew/peerspool.rb | grep -q 'Syntax OK'"
else
  bad "ruby not available for the formula syntax check"
fi
tmp=$(mktemp -d)
HOME=$tmp "$bin" --root "$tmp/root" service install --dry-run --manager launchd >"$tmp/agent.plist" 2>/dev/null
for p in packaging/launchd/dev.peerspool.daemon.plist "$tmp/agent.plist"; do
  if command -v plutil >/dev/null; then
    check "plutil -lint $p" plutil -lint "$p"
  else
    check "plist well-formed: $p" python3 -c "import plistlib,sys; d=plistlib.load(open(sys.argv[1],'rb')); assert d['Label']=='dev.peerspool.daemon' and d['KeepAlive']=={'SuccessfulExit': False} and d['ProgramArguments'][-1]=='daemon'" "$p"
  fi
done
rm -rf "$tmp"

phase done
finish
