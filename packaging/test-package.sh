#!/bin/sh
# test-package.sh DIST VERSION checks the installers `make package` wrote to
# DIST: the .deb and .rpm metadata and file lists, the tarball and its
# install Makefile, a real install and purge of the .deb (as root), and the
# Windows program and setup. One PASS or FAIL line per check, then
# "N passed, M failed"; the exit status is 1 when anything failed.
set -u

DIST=${1:-dist}
VERSION=${2:?usage: test-package.sh DIST VERSION}
ID=io.github.potluck_gpu.potluck
TOOL=$DIST/build/packaging
LINUX_BIN=$DIST/build/linux-amd64/potluck
WIN_EXE=$DIST/build/windows/potluck.exe
SETUP=$DIST/potluck-setup.exe

passed=0
failed=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# check NAME COMMAND... runs COMMAND quietly; its output is shown on failure.
check() {
	name=$1
	shift
	if "$@" >"$TMP/out" 2>&1; then
		pass "$name"
	else
		fail "$name"
		sed 's/^/    /' "$TMP/out" | tail -20
	fi
}

# has FILE PATTERN: FILE has a line matching the extended regex PATTERN.
has() { grep -Eq -- "$2" "$1" || { echo "no line matching '$2' in:"; cat "$1"; return 1; }; }

# has_all FILE PATTERN...: FILE has a line matching each PATTERN.
has_all() {
	f=$1
	shift
	for p in "$@"; do has "$f" "$p" || return 1; done
}

one() { # one GLOB: the single file matching GLOB
	set -- $1
	[ $# -eq 1 ] && [ -f "$1" ] && echo "$1"
}

ICON_SIZES="16 22 24 32 48 64 128 256 512"
LINUX_FILES="usr/bin/potluck usr/share/applications/$ID.desktop usr/share/metainfo/$ID.metainfo.xml
usr/lib/systemd/user/potluck.service usr/share/doc/potluck/README.md"
for s in $ICON_SIZES; do LINUX_FILES="$LINUX_FILES usr/share/icons/hicolor/${s}x$s/apps/$ID.png"; done

# ---- .deb ----
DEB=$(one "$DIST/potluck_${VERSION}-*_amd64.deb") || DEB=
if [ -n "$DEB" ]; then
	pass "deb built: $DEB ($(du -h "$DEB" | cut -f1))"
	dpkg-deb -I "$DEB" >"$TMP/deb-info"
	check "dpkg-deb -I: name, version, arch, depends, description" has_all "$TMP/deb-info" \
		'^ Package: potluck$' "^ Version: ${VERSION}-[0-9]+$" '^ Architecture: amd64$' \
		'^ Depends: .*libc6.*libgl1.*libx11-6.*libxcursor1.*libxrandr2' \
		'^ Description: Pool the GPUs and memory' '^ Homepage: https://'
	dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./||' >"$TMP/deb-files"
	missing=
	for f in $LINUX_FILES; do grep -qx "$f" "$TMP/deb-files" || missing="$missing $f"; done
	check "dpkg-deb -c: binary, desktop entry, metainfo, user unit, docs, $(echo $ICON_SIZES | wc -w) icon sizes" test -z "$missing"
	[ -z "$missing" ] || echo "    missing:$missing"
	dpkg-deb -c "$DEB" | awk '$1 ~ /^-/ && $2 != "root/root" {print}' >"$TMP/deb-owners"
	check "dpkg-deb -c: every file owned by root" test ! -s "$TMP/deb-owners"
else
	fail "deb built: no single $DIST/potluck_${VERSION}-*_amd64.deb"
fi

# ---- .rpm ----
RPM=$(one "$DIST/potluck-${VERSION}-*.x86_64.rpm") || RPM=
if [ -n "$RPM" ]; then
	pass "rpm built: $RPM ($(du -h "$RPM" | cut -f1))"
	rpm -qip "$RPM" >"$TMP/rpm-info" 2>&1
	check "rpm -qip: name, version, arch, summary, url" has_all "$TMP/rpm-info" \
		'^Name *: potluck$' "^Version *: ${VERSION}$" '^Architecture: x86_64$' \
		'^Summary *: Pool the GPUs and memory' '^URL *: https://'
	rpm -qp --requires "$RPM" >"$TMP/rpm-req" 2>&1
	check "rpm -qp --requires: GL and X libraries" has_all "$TMP/rpm-req" \
		'^libGL\.so\.1\(\)\(64bit\)$' '^libX11\.so\.6\(\)\(64bit\)$' '^libXrandr\.so\.2\(\)\(64bit\)$'
	rpm -qlp "$RPM" 2>/dev/null | sed 's|^/||' >"$TMP/rpm-files"
	missing=
	for f in $LINUX_FILES; do grep -qx "$f" "$TMP/rpm-files" || missing="$missing $f"; done
	check "rpm -qlp: the same files as the deb" test -z "$missing"
	[ -z "$missing" ] || echo "    missing:$missing"
else
	fail "rpm built: no single $DIST/potluck-${VERSION}-*.x86_64.rpm"
fi

# ---- tarball and its install Makefile ----
TGZ=$(one "$DIST/potluck-${VERSION}-linux-amd64.tar.gz") || TGZ=
if [ -n "$TGZ" ]; then
	pass "tarball built: $TGZ ($(du -h "$TGZ" | cut -f1))"
	mkdir -p "$TMP/tar" "$TMP/root"
	tar -xzf "$TGZ" -C "$TMP/tar"
	top=$TMP/tar/potluck-${VERSION}-linux-amd64
	check "tarball: Makefile, program, desktop entry, unit" test -f "$top/Makefile" -a -x "$top/potluck" \
		-a -f "$top/share/applications/$ID.desktop" -a -f "$top/share/systemd/user/potluck.service"
	check "tarball: make install DESTDIR=… PREFIX=/usr/local" make -C "$top" install DESTDIR="$TMP/root" PREFIX=/usr/local
	r=$TMP/root/usr/local
	check "tarball install: bin/potluck links to lib/potluck/potluck" \
		sh -c "[ \"\$(readlink '$r/bin/potluck')\" = /usr/local/lib/potluck/potluck ] && [ -x '$r/lib/potluck/potluck' ]"
	check "tarball install: Exec and ExecStart point at /usr/local/bin" sh -c \
		"grep -qx 'Exec=/usr/local/bin/potluck' '$r/share/applications/$ID.desktop' &&
		 grep -qx 'ExecStart=/usr/local/bin/potluck run' '$r/share/systemd/user/potluck.service'"
	check "tarball install: desktop-file-validate" desktop-file-validate "$r/share/applications/$ID.desktop"
	check "tarball: make uninstall leaves no files" sh -c \
		"make -C '$top' uninstall DESTDIR='$TMP/root' PREFIX=/usr/local >/dev/null && [ -z \"\$(find '$TMP/root' ! -type d)\" ]"
else
	fail "tarball built: no $DIST/potluck-${VERSION}-linux-amd64.tar.gz"
fi

# ---- LLAMA_DIR: a bundled runtime lands in llama/ next to the real binary ----
if [ -x "$TOOL" ] && [ -x "$LINUX_BIN" ]; then
	mkdir -p "$TMP/llama" "$TMP/bundle"
	printf '#!/bin/sh\necho stub\n' >"$TMP/llama/llama-server"
	chmod 755 "$TMP/llama/llama-server"
	: >"$TMP/llama/libggml.so.0"
	ln -s libggml.so.0 "$TMP/llama/libggml.so"
	if "$TOOL" linux -version "$VERSION" -bin "$LINUX_BIN" -llama "$TMP/llama" -out "$TMP/bundle" -formats deb,tar >"$TMP/out" 2>&1; then
		dpkg-deb -c "$TMP"/bundle/*.deb >"$TMP/bdeb"
		check "LLAMA_DIR deb: /usr/lib/potluck/{potluck,llama/}, /usr/bin/potluck a link" has_all "$TMP/bdeb" \
			'^-rwxr-xr-x .* \./usr/lib/potluck/potluck$' '^-rwxr-xr-x .* \./usr/lib/potluck/llama/llama-server$' \
			'\./usr/lib/potluck/llama/libggml\.so -> libggml\.so\.0$' '\./usr/bin/potluck -> /usr/lib/potluck/potluck$'
		tar -tzvf "$TMP"/bundle/*.tar.gz >"$TMP/btar"
		check "LLAMA_DIR tarball: llama/ beside the program" has_all "$TMP/btar" \
			'^-rwxr-xr-x .*/llama/llama-server$' '/llama/libggml\.so -> libggml\.so\.0$'
	else
		fail "LLAMA_DIR packages built"
		sed 's/^/    /' "$TMP/out"
	fi
fi

# ---- install the .deb, use it, purge it ----
if [ -n "$DEB" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	dpkg -s potluck >/dev/null 2>&1 && apt-get purge -y -qq potluck >/dev/null 2>&1
	case $DEB in /*) debpath=$DEB ;; *) debpath=./$DEB ;; esac
	if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$debpath" >"$TMP/out" 2>&1; then
		pass "apt-get install $debpath"
		dpkg -L potluck >"$TMP/installed"
		check "/usr/bin/potluck version says $VERSION" sh -c "/usr/bin/potluck version 2>/dev/null | grep -qx 'potluck $VERSION'"
		# Either llama.cpp is found (the user's cache, PATH), or the message
		# lists the llama/ folder next to the installed binary first.
		/usr/bin/potluck engine status >"$TMP/engine" 2>&1
		rc=$?
		if [ $rc = 0 ] && grep -q '^llama-server' "$TMP/engine"; then
			pass "potluck engine status: $(grep '^llama-server' "$TMP/engine" | tr -s ' ')"
		elif grep -q 'llama.cpp not found: looked in next to potluck (/usr/bin/llama)' "$TMP/engine"; then
			pass "potluck engine status: llama.cpp not installed, searched /usr/bin/llama first"
		else
			fail "potluck engine status (exit $rc)"
			sed 's/^/    /' "$TMP/engine"
		fi
		check "desktop-file-validate /usr/share/applications/$ID.desktop" desktop-file-validate "/usr/share/applications/$ID.desktop"
		check "appstreamcli validate the metainfo" appstreamcli validate --no-net "/usr/share/metainfo/$ID.metainfo.xml"
		check "desktop entry's icon installed in hicolor" test -f "/usr/share/icons/hicolor/48x48/apps/$ID.png"
		if command -v systemd-analyze >/dev/null; then
			mkdir -m 700 "$TMP/run"
			check "systemd-analyze --user verify potluck.service" \
				env XDG_RUNTIME_DIR="$TMP/run" systemd-analyze --user verify /usr/lib/systemd/user/potluck.service
		else
			echo "SKIP: systemd-analyze not installed"
		fi
		if apt-get purge -y -qq potluck >"$TMP/out" 2>&1; then
			pass "apt-get purge potluck"
		else
			fail "apt-get purge potluck"
			sed 's/^/    /' "$TMP/out"
		fi
		check "purged: dpkg knows no potluck" sh -c '! dpkg -s potluck 2>/dev/null | grep -q "^Status: install"'
		left=
		while read -r p; do
			case $p in /usr/share/doc/potluck | /usr/lib/potluck) [ -e "$p" ] && left="$left $p" ;; esac
			[ -d "$p" ] && continue
			[ -e "$p" ] || [ -L "$p" ] && left="$left $p"
		done <"$TMP/installed"
		check "purged: none of the package's files is left" test -z "$left"
		[ -z "$left" ] || echo "    left:$left"
	else
		fail "apt-get install $debpath"
		sed 's/^/    /' "$TMP/out" | tail -20
	fi
else
	echo "SKIP: installing the .deb needs root and apt-get"
fi

# ---- Windows ----
if [ -f "$WIN_EXE" ]; then
	check "file: potluck.exe is PE32+ x86-64 GUI" sh -c "file -b '$WIN_EXE' | grep -q '^PE32+ executable (GUI) x86-64'"
	7z l "$WIN_EXE" >"$TMP/exe-res" 2>&1
	check "potluck.exe resources: icon, manifest, version $VERSION" has_all "$TMP/exe-res" \
		'\.rsrc/GROUP_ICON/' '\.rsrc/MANIFEST/' '\.rsrc/version\.txt' "^ProductVersion: ${VERSION}$"
	x86_64-w64-mingw32-objdump -p "$WIN_EXE" | awk '/DLL Name:/ {print $3}' >"$TMP/dlls"
	check "potluck.exe needs only Windows' own DLLs" sh -c "! grep -Eiq '^lib|mingw|pthread' '$TMP/dlls'"
else
	fail "Windows program built: no $WIN_EXE"
fi
if [ -f "$SETUP" ]; then
	pass "setup built: $SETUP ($(du -h "$SETUP" | cut -f1))"
	check "file: potluck-setup.exe is PE32+ x86-64" sh -c "file -b '$SETUP' | grep -q '^PE32+ executable (GUI) x86-64'"
	7z l "$SETUP" >"$TMP/setup-list" 2>&1
	check "7z l potluck-setup.exe: an NSIS installer" has "$TMP/setup-list" '^Type = Nsis$'
	check "7z l potluck-setup.exe: potluck.exe and uninstall.exe inside" has_all "$TMP/setup-list" \
		' potluck\.exe$' ' uninstall\.exe$'
	size=$(awk '$NF == "potluck.exe" {print $(NF-1); exit}' "$TMP/setup-list")
	check "the installer's potluck.exe is the size of the built one" test "$size" = "$(stat -c %s "$WIN_EXE" 2>/dev/null)"
else
	fail "setup built: no $SETUP"
fi

# ---- signing: skipped without a certificate, done with one ----
SIGN=packaging/windows/sign.sh
if [ -f "$WIN_EXE" ]; then
	cp "$WIN_EXE" "$TMP/unsigned.exe"
	check "sign.sh without WINDOWS_SIGN_PFX skips and says so" sh -c \
		"env -u WINDOWS_SIGN_PFX sh $SIGN '$TMP/unsigned.exe' | grep -q 'not signed' && cmp -s '$TMP/unsigned.exe' '$WIN_EXE'"
	if command -v openssl >/dev/null && command -v osslsigncode >/dev/null; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=Potluck test' \
			-keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1 &&
			openssl pkcs12 -export -inkey "$TMP/key.pem" -in "$TMP/cert.pem" -out "$TMP/test.pfx" -passout pass:test >/dev/null 2>&1
		cp "$WIN_EXE" "$TMP/signed.exe"
		check "sign.sh with a test certificate: osslsigncode verifies it" sh -c \
			"WINDOWS_SIGN_PFX='$TMP/test.pfx' WINDOWS_SIGN_PASSWORD=test sh $SIGN '$TMP/signed.exe' >/dev/null &&
			 osslsigncode verify -CAfile '$TMP/cert.pem' -in '$TMP/signed.exe'"
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
