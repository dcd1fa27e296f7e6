#!/bin/sh
# sign.sh FILE signs a Windows executable in place (Authenticode, SHA-256)
# with osslsigncode when WINDOWS_SIGN_PFX names a PKCS#12 certificate, and
# says so and does nothing otherwise.
#
#   WINDOWS_SIGN_PFX            the .pfx/.p12 file
#   WINDOWS_SIGN_PASSWORD       its password (read from a private temporary file, never argv)
#   WINDOWS_SIGN_TIMESTAMP_URL  an RFC 3161 time-stamp server, optional
set -eu
file=$1
if [ -z "${WINDOWS_SIGN_PFX:-}" ]; then
	echo "sign: WINDOWS_SIGN_PFX not set, $(basename "$file") not signed"
	exit 0
fi
pass=$(mktemp)
trap 'rm -f "$pass" "$file.signed"' EXIT
printf '%s' "${WINDOWS_SIGN_PASSWORD:-}" >"$pass"
set -- -pkcs12 "$WINDOWS_SIGN_PFX" -readpass "$pass" -h sha256 -n Potluck
if [ -n "${WINDOWS_SIGN_TIMESTAMP_URL:-}" ]; then
	set -- "$@" -ts "$WINDOWS_SIGN_TIMESTAMP_URL"
fi
osslsigncode sign "$@" -in "$file" -out "$file.signed" >/dev/null
mv "$file.signed" "$file"
echo "sign: signed $(basename "$file")"
