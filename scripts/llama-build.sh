#!/usr/bin/env bash
# llama-build.sh builds llama.cpp's llama-server and ggml-rpc-server, for
# Linux (host gcc) and for Windows (mingw-w64), from the llama.cpp source that
# the npm package node-llama-cpp ships as a git bundle. The tests serve these
# binaries as official release archives (engine/release/releasetest), and the
# Windows harness runs the Windows ones under Wine.
#
#   scripts/llama-build.sh [linux|windows]...   (default: both)
#
# Results, keyed on the llama.cpp commit, stay in $POTLUCK_DEV_CACHE
# (default ~/.cache/potluck-dev) with ccache's cache beside them, so a second
# run is instant and a rebuild after a cache wipe mostly hits ccache. It prints
# one line per target: "<os> <version> <dir>".
set -euo pipefail

NLC_VERSION=${NLC_VERSION:-3.22.1}
CACHE=${POTLUCK_DEV_CACHE:-$HOME/.cache/potluck-dev}
JOBS=${JOBS:-$(nproc)}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(linux windows)

need() { command -v "$1" >/dev/null || { echo "llama-build: $1 is missing (make llama-builds installs it)" >&2; exit 1; }; }
need git; need cmake; need npm

# Test packages running in parallel may all ask: one fetch of the source
# at a time, and one build of each target; a target already built is not
# held up by another one building.
mkdir -p "$CACHE"
exec 9>"$CACHE/.llama-build.lock"
flock 9

# The source: node-llama-cpp's bundle, cloned once per package version.
src=$CACHE/llama-src/node-llama-cpp-$NLC_VERSION
if [ ! -f "$src/.potluck-ok" ]; then
	tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
	echo "llama-build: fetching node-llama-cpp@$NLC_VERSION for its llama.cpp source" >&2
	(cd "$tmp" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null && \
		tar -xzf "node-llama-cpp-$NLC_VERSION.tgz" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json)
	rm -rf "$src"; mkdir -p "$(dirname "$src")"
	git clone -q "$tmp/package/llama/gitRelease.bundle" "$src" 2>/dev/null
	cp "$tmp/package/llama/llama.cpp.info.json" "$src/.llama.cpp.info.json"
	touch "$src/.potluck-ok"
fi
flock -u 9
commit=$(git -C "$src" rev-parse --short HEAD)
# The version llama-server reports: "version: 0.5.0 (build N, commit C)".
version=$(sed -n 's/.*"tag": *"v\{0,1\}\([^"]*\)".*/\1/p' "$src/.llama.cpp.info.json")
[ -n "$version" ] || { echo "llama-build: no tag in llama.cpp.info.json" >&2; exit 1; }

export CCACHE_DIR=$CACHE/ccache CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-500M} CCACHE_BASEDIR=$CACHE
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

# LLAMA_BUILD_IS_DEV=OFF: a release build, as from the release tag, so the
# binaries report "0.5.0" as the official archives do, not "0.5.0-dev".
# -O1: the tests run tiny models, and it compiles in about half the time
# of the release builds' -O3 (CI builds this cold).
common=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" -DLLAMA_BUILD_IS_DEV=OFF -DGGML_NATIVE=OFF -DGGML_RPC=ON -DLLAMA_OPENSSL=OFF
	-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	-DLLAMA_BUILD_NUMBER=${LLAMA_BUILD_NUMBER:-1})

# The recipe is this script: a change to it builds again (in the same build folder, so
# mostly from ccache and make's own up-to-date checks).
recipe=$(sha256sum <"$0" | cut -c1-12)

for os in "${targets[@]}"; do
	out=$CACHE/llama-build/$version-$commit/$os
	exec 8>"$CACHE/.llama-build-$os.lock"
	flock 8
	if [ "$(cat "$out/.potluck-ok" 2>/dev/null)" = "$recipe" ]; then echo "$os $version $out/bin"; flock -u 8; continue; fi
	build=$CACHE/llama-build/$version-$commit/$os.build
	start=$(date +%s)
	mkdir -p "$(dirname "$build")"
	case $os in
	linux)
		need gcc
		# As the official Linux archives: shared libraries found through $ORIGIN.
		cmake -S "$src" -B "$build" "${common[@]}" "${launcher[@]}" \
			-DCMAKE_INSTALL_RPATH='$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON >"$build.log" 2>&1 || { tail -20 "$build.log" >&2; exit 1; }
		;;
	windows)
		need x86_64-w64-mingw32-g++-posix
		mkdir -p "$build"
		cat >"$build/toolchain.cmake" <<-'TC'
		set(CMAKE_SYSTEM_NAME Windows)
		set(CMAKE_SYSTEM_PROCESSOR x86_64)
		set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
		set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
		set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)
		set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32)
		set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
		set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
		set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
		TC
		# Static, so the exes import only Windows' own DLLs. Bookworm's mingw
		# headers need _WIN32_WINNT for C only (C++ would break cpp-httplib).
		cmake -S "$src" -B "$build" "${common[@]}" "${launcher[@]}" \
			-DCMAKE_TOOLCHAIN_FILE="$build/toolchain.cmake" \
			-DBUILD_SHARED_LIBS=OFF -DGGML_STATIC=ON -DCMAKE_EXE_LINKER_FLAGS=-static \
			-DCMAKE_C_FLAGS=-D_WIN32_WINNT=0x0601 \
			-DOpenMP_gomp_LIBRARY="$(x86_64-w64-mingw32-gcc-posix -print-file-name=libgomp.a)" \
			-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
			>"$build.log" 2>&1 || { tail -20 "$build.log" >&2; exit 1; }
		;;
	*) echo "llama-build: unknown target $os (want linux or windows)" >&2; exit 2 ;;
	esac
	echo "llama-build: building llama.cpp $version ($commit) for $os; log in $build.log" >&2
	cmake --build "$build" -j "$JOBS" --target llama-server ggml-rpc-server >>"$build.log" 2>&1 || { tail -30 "$build.log" >&2; exit 1; }
	rm -rf "$out"; mkdir -p "$out/bin"
	if [ "$os" = windows ]; then
		cp "$build"/bin/llama-server.exe "$build"/bin/ggml-rpc-server.exe "$out/bin/"
		x86_64-w64-mingw32-strip "$out"/bin/*.exe
	else
		cp -P "$build"/bin/llama-server "$build"/bin/ggml-rpc-server "$build"/bin/*.so* "$out/bin/"
	fi
	cp "$src/LICENSE" "$out/bin/LICENSE"
	echo "$recipe" >"$out/.potluck-ok"
	echo "llama-build: $os done in $(( $(date +%s) - start ))s" >&2
	echo "$os $version $out/bin"
	flock -u 8
done
