#!/bin/sh
# Builds the WorksPad test-double package: build.sh OUTDIR -> OUTDIR/workspad-double_1.0_all.deb
# Offline; needs only dpkg-deb. Never used by a real stack.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -a "$here/pkg/." "$stage/"
# git does not keep modes other than +x, so set every mode the package relies on
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/DEBIAN/config" "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm" "$stage/opt/workspad/bin/workspad-server"
chmod 0640 "$stage/opt/workspad/appsettings.json"
rm -f "$stage/opt/workspad/certs/.keep"
# fixed timestamps: the same sources give the same .deb, so its hash (a deploy trigger) only moves on real change
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/workspad-double_1.0_all.deb" >&2
echo "$out/workspad-double_1.0_all.deb"
