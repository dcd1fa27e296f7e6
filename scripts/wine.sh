#!/usr/bin/env bash
# wine.sh runs Windows programs under Wine 10, from a Debian trixie chroot
# (bookworm's Wine 8 is too old for Go >= 1.22 programs). Root only.
#
#   scripts/wine.sh setup
#       Builds the chroot (debootstrap minbase trixie, from the mirror the
#       host's apt sources name, or $POTLUCK_DEBIAN_MIRROR), installs Wine and
#       Mesa GL in it, and boots a 64-bit prefix. Both are cached under
#       $POTLUCK_DEV_CACHE/wine (default ~/.cache/potluck-dev/wine); a second
#       run prints nothing. An interrupted run resumes where it stopped.
#   scripts/wine.sh run [-C DIR] [--display :N | --xvfb] [--env NAME=VALUE]...
#                       [--prefix DIR] [--leftovers FILE] -- PROGRAM [ARGS...]
#       Runs PROGRAM (a host path, relative to DIR, or a name Wine finds, such
#       as reg or cmd) under Wine with the working folder DIR (default: the
#       current one). DIR, /tmp, the repository and PROGRAM's folder appear in
#       the chroot at their host paths. stdin, stdout, stderr and the exit code
#       pass through, and so do POTLUCK_* and GGML_* variables. --display uses
#       an X display of the host (default: $DISPLAY, if set), --xvfb a private
#       Xvfb for this run. --prefix uses another Wine prefix, created on first
#       use (about 20 s and 800 MB), instead of the cached one.
#       Each run has its own mount and PID namespaces and its own wineserver
#       (its socket is in the run's private XDG_RUNTIME_DIR). When PROGRAM
#       exits, whatever it left running is killed, and the run returns once the
#       wineserver has saved the registry. If wine.sh is interrupted or killed,
#       everything the run started dies with it. --leftovers FILE writes to
#       FILE the Windows programs (outside C:\windows) still running 5 s after
#       PROGRAM ended: nothing, when it left no child behind.
#       To stop the program cleanly, send SIGINT to its Linux process (its
#       command line starts with the program's name): Go sees os.Interrupt.
#   scripts/wine.sh teardown   (or clean)
#       Removes the chroot and the prefix.
#
# Runs at once are fine, but two that write the registry of the same prefix
# at the same time keep only one's changes: give such runs their own --prefix.
set -euo pipefail

SUITE=trixie
WINE_DEBS="wine wine64 libgl1 libglx-mesa0 libgl1-mesa-dri"
# The stamp's content: a chroot or prefix made from other settings is redone.
KEY="suite=$SUITE debs=$WINE_DEBS v1"

CACHE=${POTLUCK_DEV_CACHE:-$HOME/.cache/potluck-dev}/wine
ROOT=$CACHE/chroot
PREFIX=$CACHE/prefix
STAMP=.potluck-wine-ready
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SELF=$REPO/scripts/wine.sh
# Where the chroot sees the prefix.
CHROOT_PREFIX=/wineprefix

die() { echo "wine.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 is missing: install the Debian package $2 (make wine-setup does)"; }
need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (chroot and mount namespaces)"; }
ready() { [ -f "$1/$STAMP" ] && [ "$(cat "$1/$STAMP")" = "$KEY" ]; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# mirror prints the first Debian archive that apt's sources name: a "deb"
# entry with a plain suite (bookworm, not bookworm-updates) and component
# main, not a security archive. Both the one-line and the deb822 formats.
mirror() {
	if [ -n "${POTLUCK_DEBIAN_MIRROR:-}" ]; then echo "$POTLUCK_DEBIAN_MIRROR"; return; fi
	local files=() f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	awk '
		function pick(types, uris, suites, comps,   n, s, i, u) {
			if (types !~ /(^| )deb( |$)/ || comps !~ /(^| )main( |$)/) return
			n = split(suites, s, " ")
			for (i = 1; i <= n; i++) if (s[i] ~ /^[a-z]+$/) {
				split(uris, u, " ")
				if (u[1] !~ /security/ && u[1] ~ /^https?:/) { print u[1]; found = 1; exit }
			}
		}
		function flush() { if (types != "") pick(types, uris, suites, comps); types = uris = suites = comps = "" }
		FNR == 1 { flush() }
		FILENAME ~ /\.sources$/ {
			if ($0 ~ /^[ \t]*$/) { flush(); next }
			if ($0 ~ /^[ \t]*#/) next
			if ($1 == "Types:") { $1 = ""; types = $0 }
			else if ($1 == "URIs:") { $1 = ""; uris = $0 }
			else if ($1 == "Suites:") { $1 = ""; suites = $0 }
			else if ($1 == "Components:") { $1 = ""; comps = $0 }
			else if ($1 == "Enabled:" && $2 == "no") { types = "off" }
			next
		}
		{
			sub(/#.*/, ""); if (NF < 3) next
			if ($2 ~ /^\[/) { while ($2 !~ /\]$/) { $2 = ""; $0 = $0 } $2 = ""; $0 = $0 }
			c = ""; for (i = 4; i <= NF; i++) c = c " " $i
			pick($1, $2, $3, c)
		}
		END { if (!found) flush() }
	' "${files[@]}"
}

# safe_rm removes folders, unless something is mounted under one of them (a
# leftover of a tool run outside this script): rm -rf would go into it.
safe_rm() {
	local d m
	for d in "$@"; do
		[ -e "$d" ] || continue
		m=$(awk -v d="$(cd "$d" && pwd -P)/" 'index($2 "/", d) == 1 { print $2 }' /proc/self/mounts)
		[ -z "$m" ] || die "not removing $d: something is mounted in it (umount it first): $m"
		rm -rf "$d"
	done
}

# in_chroot DIR CMD...: runs CMD in the chroot DIR, in a private mount
# namespace with proc, sys, dev, dev/pts and dev/shm mounted; they vanish
# with the namespace. Used by setup; run has its own, richer version.
in_chroot() {
	local dir=$1; shift
	unshare -m --propagation private -- /bin/sh -ec '
		d=$1; shift
		mount -t proc proc "$d/proc"; mount --rbind /sys "$d/sys"; mount --rbind /dev "$d/dev"
		mount -t tmpfs -o mode=1777 shm "$d/dev/shm"
		exec chroot "$d" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
			DEBIAN_FRONTEND=noninteractive "$@"' sh "$dir" "$@"
}

setup() {
	if ready "$ROOT" && ready "$PREFIX"; then return; fi
	need_root setup
	need debootstrap debootstrap; need unshare util-linux; need flock util-linux
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	if ready "$ROOT" && ready "$PREFIX"; then return; fi # another setup did it meanwhile

	local t0 t tmp=$ROOT.tmp
	t0=$(now)
	if ! ready "$ROOT"; then
		safe_rm "$ROOT"
		if [ ! -f "$tmp/.potluck-debootstrap-done" ]; then
			local url; url=$(mirror)
			[ -n "$url" ] || die "no Debian mirror in /etc/apt/sources.list*; set POTLUCK_DEBIAN_MIRROR"
			safe_rm "$tmp"
			echo "wine.sh: debootstrap $SUITE from $url into $tmp" >&2
			t=$(now)
			# In a mount namespace of its own, so that what it mounts in the
			# chroot (proc, sys) goes with it even when it is killed.
			unshare -m --propagation private -- \
				debootstrap --variant=minbase "$SUITE" "$tmp" "$url" >"$CACHE/debootstrap.log" 2>&1 ||
				{ tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed, see $CACHE/debootstrap.log"; }
			touch "$tmp/.potluck-debootstrap-done"
			echo "wine.sh: chroot created in $(took "$t")" >&2
		fi
		echo "wine.sh: installing $WINE_DEBS in the chroot" >&2
		t=$(now)
		in_chroot "$tmp" /bin/sh -ec "
			dpkg --configure -a
			apt-get update -qq
			apt-get install -y -qq --no-install-recommends $WINE_DEBS >/dev/null
			apt-get clean
			rm -rf /var/lib/apt/lists/*" >"$CACHE/apt.log" 2>&1 ||
			{ tail -20 "$CACHE/apt.log" >&2; die "installing Wine failed, see $CACHE/apt.log"; }
		mkdir -p "$tmp$CHROOT_PREFIX"
		echo "wine.sh: Wine installed in $(took "$t") ($(in_chroot "$tmp" wine --version 2>/dev/null))" >&2
		echo "$KEY" >"$tmp/$STAMP"
		mv "$tmp" "$ROOT"
		safe_rm "$PREFIX" # made by another Wine
	fi
	if ! ready "$PREFIX"; then
		safe_rm "$PREFIX.tmp"; mkdir -p "$PREFIX.tmp"
		echo "wine.sh: wineboot -i for a 64-bit prefix in $PREFIX" >&2
		t=$(now)
		"$SELF" run --prefix "$PREFIX.tmp" --env WINEARCH=win64 -C /tmp -- wineboot -i >"$CACHE/wineboot.log" 2>&1 ||
			{ tail -20 "$CACHE/wineboot.log" >&2; die "wineboot failed, see $CACHE/wineboot.log"; }
		echo "$KEY" >"$PREFIX.tmp/$STAMP"
		mv "$PREFIX.tmp" "$PREFIX"
		echo "wine.sh: prefix booted in $(took "$t")" >&2
	fi
	echo "wine.sh: setup done in $(took "$t0")" >&2
}

teardown() {
	need_root teardown
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	# Runs mount in namespaces of their own, so no mount of them shows here:
	# rm sees only the chroot's own files.
	safe_rm "$ROOT" "$ROOT.tmp" "$PREFIX" "$PREFIX.tmp"
	rm -f "$CACHE"/*.log
}

run() {
	local dir=$PWD display=${DISPLAY:-} xvfb= prefix=$PREFIX envs=()
	while [ $# -gt 0 ]; do
		case $1 in
		-C) [ $# -ge 2 ] || die "run: -C needs a folder"; dir=$2; shift 2 ;;
		--display) [ $# -ge 2 ] || die "run: --display needs :N"; display=$2; shift 2 ;;
		--display=*) display=${1#*=}; shift ;;
		--xvfb) xvfb=1; shift ;;
		--env) [ $# -ge 2 ] || die "run: --env needs NAME=VALUE"; envs+=("$2"); shift 2 ;;
		--env=*) envs+=("${1#*=}"); shift ;;
		--prefix) [ $# -ge 2 ] || die "run: --prefix needs a folder"; prefix=$2; shift 2 ;;
		--leftovers) [ $# -ge 2 ] || die "run: --leftovers needs a file"; envs+=("WINE_LEFTOVERS=$2"); shift 2 ;;
		--) shift; break ;;
		*) die "run: unknown option $1 (usage: run [-C DIR] [--display :N|--xvfb] [--env N=V]... [--prefix DIR] -- PROGRAM ARGS...)" ;;
		esac
	done
	[ $# -gt 0 ] || die "run: no program given"
	need_root run
	need unshare util-linux
	ready "$ROOT" || die "run: no Wine chroot in $ROOT: run scripts/wine.sh setup (make wine-setup) first"
	[ "$prefix" != "$PREFIX" ] || ready "$PREFIX" || die "run: no Wine prefix in $PREFIX: run scripts/wine.sh setup first"
	local e
	for e in "${envs[@]}"; do [[ $e == [A-Za-z_]*=* ]] || die "run: --env $e is not NAME=VALUE"; done
	dir=$(cd "$dir" && pwd -P) || die "run: no folder $dir"
	mkdir -p "$prefix"; prefix=$(cd "$prefix" && pwd -P)

	# PROGRAM: a path (with a slash) is made absolute, relative to DIR; a
	# bare name is left to Wine (the current folder, then its system folder).
	local prog=$1; shift
	if [[ $prog == */* ]]; then
		[[ $prog == /* ]] || prog=$dir/$prog
		[ -e "$prog" ] || die "run: no program $prog"
		prog=$(cd "$(dirname "$prog")" && pwd -P)/$(basename "$prog")
	fi

	# The folders that appear in the chroot at their host paths, shortest
	# first so that none hides another.
	local binds
	binds=$(printf '%s\n' /tmp "$REPO" "$dir" $([[ $prog == /* ]] && dirname "$prog") |
		awk '$0 != "/" && !seen[$0]++ { print length, $0 }' | sort -n -s -k1,1 | cut -d' ' -f2-)

	# The environment inside: a clean one, plus POTLUCK_*, GGML_* and --env.
	local -a env=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 USER=root
		WINEPREFIX=$CHROOT_PREFIX WINEDEBUG=-all XDG_RUNTIME_DIR=/run/user/0 TERM=${TERM:-dumb})
	local name
	while IFS= read -r name; do env+=("$name=${!name}"); done < <(compgen -e | grep -E '^(POTLUCK|GGML)_' || true)
	[ -z "${XAUTHORITY:-}" ] || env+=("XAUTHORITY=$XAUTHORITY")

	local rc=0
	xpid= xdir= upid=
	# On the way out, also when wine.sh is interrupted or killed: the run
	# (killing unshare kills all of its namespace: --kill-child) and Xvfb go.
	cleanup() {
		if [ -n "$upid" ]; then kill -KILL "$upid" 2>/dev/null || true; wait "$upid" 2>/dev/null || true; fi
		if [ -n "$xpid" ]; then kill "$xpid" 2>/dev/null || true; wait "$xpid" 2>/dev/null || true; fi
		[ -z "$xdir" ] || rm -rf "$xdir"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	if [ -n "$xvfb" ]; then
		need Xvfb xvfb
		xdir=$(mktemp -d)
		# -displayfd: Xvfb picks a free display and writes its number when ready.
		Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$xdir/display" >"$xdir/log" 2>&1 &
		xpid=$!
		local i
		for i in $(seq 100); do
			[ -s "$xdir/display" ] && break
			kill -0 "$xpid" 2>/dev/null || { cat "$xdir/log" >&2; die "run: Xvfb failed"; }
			sleep 0.1
		done
		[ -s "$xdir/display" ] || die "run: Xvfb did not start"
		display=:$(head -1 "$xdir/display")
	fi
	[ -z "$display" ] || env+=("DISPLAY=$display")
	env+=("${envs[@]}")

	# Mount and PID namespaces of its own: the run's mounts and processes
	# vanish when it ends, and with --kill-child when unshare is killed. In
	# the background (stdin passed on explicitly), so that the traps above
	# run as soon as a signal comes.
	unshare -m --propagation private --pid --fork --mount-proc="$ROOT/proc" --kill-child -- \
		/bin/bash -c "$(declare -f inner); inner \"\$@\"" inner \
		"$ROOT" "$prefix" "$dir" "$binds" "${#env[@]}" "${env[@]}" "$prog" "$@" <&0 &
	upid=$!
	wait "$upid" || rc=$?
	upid=
	exit "$rc"
}

# inner runs in the run's own mount and PID namespaces (as PID 1): it mounts
# what the chroot needs (proc is already there: --mount-proc), then runs the
# program. All mounts go when the namespaces' last process does.
inner() {
	set -eu
	local root=$1 prefix=$2 dir=$3 binds=$4 n=$5
	shift 5
	local -a env=("${@:1:n}")
	shift "$n"
	mount --rbind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
	local b
	while IFS= read -r b; do
		[ -n "$b" ] || continue
		mkdir -p "$root$b"
		mount --rbind "$b" "$root$b"
	done <<<"$binds"
	mount --bind "$prefix" "$root/wineprefix"
	# A private /run for XDG_RUNTIME_DIR, where Wine 10 keeps its wineserver's
	# socket: each run has a wineserver of its own, which sees its mounts
	# and its PID namespace.
	mount -t tmpfs -o mode=0755 run "$root/run"
	mkdir -m 0700 -p "$root/run/user/0"
	# The machine's own name resolves from a hosts file, never by DNS: Wine
	# looks it up as its services start, and where DNS is out of reach
	# that waits out its timeouts, long enough that a program's first
	# window gives up on Wine's desktop ("The explorer process failed to
	# start"). The chroot has no hosts file of its own.
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(uname -n)" >"$root/run/hosts"
	[ -e "$root/etc/hosts" ] || : >"$root/etc/hosts"
	mount --bind "$root/run/hosts" "$root/etc/hosts"
	# When the program ends, what it left running is killed, and the run
	# waits for the wineserver to save the registry and exit (at once after
	# -k; a plain -w waits for its 3 s persistence and any leftover).
	# With --leftovers FILE, the Windows programs (outside C:\windows) still
	# running 5 s after PROGRAM ended are written to FILE, one command line
	# a line, before they are killed: an empty FILE means none was left.
	exec chroot "$root" /usr/bin/env -i "${env[@]}" /bin/sh -c '
		cd "$1" || exit 126; shift
		wine "$@"; rc=$?
		if [ -n "${WINE_LEFTOVERS:-}" ]; then
			i=0
			while :; do
				left=$(for p in /proc/[0-9]*; do tr "\0" " " <"$p/cmdline" 2>/dev/null; echo; done |
					awk "tolower(\$1) ~ /[.]exe\$/ && tolower(\$1) !~ /^c:.windows./")
				[ -z "$left" ] || [ $i -ge 50 ] && break
				i=$((i + 1)); sleep 0.1
			done
			printf "%s" "$left" >"$WINE_LEFTOVERS"
		fi
		wineserver -k 2>/dev/null; wineserver -w
		exit $rc' sh "$dir" "$@"
}

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
setup) setup "$@" ;;
run) run "$@" ;;
teardown | clean) teardown "$@" ;;
*) echo "usage: scripts/wine.sh setup | run [-C DIR] [--display :N|--xvfb] [--env N=V]... [--prefix DIR] -- PROGRAM ARGS... | teardown" >&2; exit 2 ;;
esac
