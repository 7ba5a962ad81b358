#!/bin/bash
# Builds Tengine (nginx-based, with its upstream check module) from a release tarball, once, into build/tengine/
# (git-ignored), and links it as /usr/local/sbin/tengine, where the lab's tengine driver finds it. Tengine is
# packaged nowhere the lab can reach; its source is a real third-party release.
#
# usage: scripts/tengine.sh            (make tengine)
# environment:
#   TENGINE_SRC   the release tarball: a path (default ../shared/vendor/tengine-3.1.0.tar.gz) or the upstream
#                 URL a machine with internet would use, e.g.
#                 https://github.com/alibaba/tengine/archive/refs/tags/3.1.0.tar.gz
#   FORCE=1       rebuild even when build/tengine/VERSION says this tarball was built
# Idempotent: the tarball's sha256 is recorded in build/tengine/VERSION with the version the binary prints.
set -euo pipefail

SRC=${TENGINE_SRC:-../shared/vendor/tengine-3.1.0.tar.gz}
FORCE=${FORCE:-0}
ROOT=$(pwd)/build/tengine
LINK=/usr/local/sbin/tengine
BUILD_PKGS="gcc make libpcre2-dev libssl-dev zlib1g-dev"

die() { echo "tengine: $*" >&2; exit 1; }

mkdir -p "$ROOT"
if [[ $SRC == http://* || $SRC == https://* ]]; then
	tarball=$ROOT/$(basename "$SRC")
	if [[ ! -s $tarball ]]; then
		echo "tengine: downloading $SRC"
		curl -fsSL -o "$tarball.partial" "$SRC" || die "cannot download $SRC"
		mv "$tarball.partial" "$tarball"
	fi
else
	tarball=$SRC
	[[ -s $tarball ]] || die "no tarball at $tarball: set TENGINE_SRC to Tengine's release tarball (a path or" \
		"https://github.com/alibaba/tengine/archive/refs/tags/3.1.0.tar.gz)"
fi
sum=$(sha256sum "$tarball" | cut -d' ' -f1)
bin=$ROOT/install/sbin/nginx

if [[ $FORCE != 1 && -x $bin && -s $ROOT/VERSION ]] && grep -q "sha256 $sum" "$ROOT/VERSION"; then
	ln -sfn "$bin" "$LINK"
	echo "tengine: $(head -1 "$ROOT/VERSION") present, skipped ($LINK)"
	exit 0
fi

missing=$(for p in $BUILD_PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
	grep -q '^install ok installed' || echo "$p"; done)
if [[ -n $missing ]]; then
	echo "tengine: installing" $missing
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$missing >/dev/null || die "cannot install $missing"
fi

start=$(date +%s)
rm -rf "$ROOT/src" "$ROOT/install"
mkdir -p "$ROOT/src"
tar -xzf "$tarball" -C "$ROOT/src" --strip-components=1 || die "cannot unpack $tarball"
cd "$ROOT/src"
[[ -d modules/ngx_http_upstream_check_module ]] || die "$tarball has no modules/ngx_http_upstream_check_module:" \
	"is it a Tengine release?"
echo "tengine: building from $tarball (sha256 $sum)"
# The http proxy with the upstream check module (the health-check family), and the stream module (the lab's
# tcp mode). Nothing else is needed; the build log is kept for when it fails.
./configure --prefix="$ROOT/install" --with-stream \
	--add-module=modules/ngx_http_upstream_check_module >"$ROOT/build.log" 2>&1 ||
	die "configure failed: see $ROOT/build.log"
make -j"$(nproc)" >>"$ROOT/build.log" 2>&1 || die "make failed: see $ROOT/build.log"
make install >>"$ROOT/build.log" 2>&1 || die "make install failed: see $ROOT/build.log"
version=$("$bin" -v 2>&1 | sed -n 's/^Tengine version: Tengine\/\([0-9.]*\).*/\1/p')
[[ -n $version ]] || die "$bin -v printed no Tengine version"
printf 'tengine %s\nsha256 %s\nsource %s\nbuilt %s in %ss\n' "$version" "$sum" "$SRC" \
	"$(date -u +%FT%TZ)" "$(($(date +%s) - start))" >"$ROOT/VERSION"
ln -sfn "$bin" "$LINK"
echo "tengine: Tengine $version built in $(($(date +%s) - start)) s, linked as $LINK"
