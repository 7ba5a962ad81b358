#!/bin/bash
# Builds the lab's container images offline: a Debian rootfs from mmdebstrap (using this machine's own apt
# sources, with the suite swapped), imported with `docker import`. One image per role, tagged twice:
#   faultlab/<role>:<version of the role's main package>   e.g. faultlab/haproxy:2.6.12-1-deb12u4
#   faultlab/<role>:<suite>                                the lab's stable tag, e.g. faultlab/haproxy:bookworm
#
# usage: images/build.sh ROLE...     (roles: haproxy nginx mariadb tools tengine)
# The tengine role is Debian's runtime libraries plus the binary `make tengine` built on this machine (Tengine
# is packaged nowhere), so it needs `make tengine` first and a SUITE equal to this machine's own.
# environment:
#   SUITE=bookworm   Debian suite to build (trixie works from the same mirror)
#   OUT=images/out   where rootfs tarballs, the derived sources file and build-times.log go
#   FORCE=1          rebuild even when the suite tag exists
#   SOURCES=FILE     apt sources to use instead of the ones derived from /etc/apt/sources.list.d
# Idempotent: a role whose faultlab/<role>:<suite> image exists is skipped; a role whose tarball exists is
# only re-imported.
set -euo pipefail

SUITE=${SUITE:-bookworm}
OUT=${OUT:-images/out}
FORCE=${FORCE:-0}

die() { echo "images: $*" >&2; exit 1; }

# role_packages ROLE: the packages to install (comma-separated) and the main package, whose version tags
# the image.
role_packages() {
	case $1 in
	haproxy) echo "haproxy,procps haproxy" ;;
	nginx) echo "nginx-light,procps nginx-light" ;;
	mariadb) echo "mariadb-server,procps mariadb-server" ;;
	tools) echo "iproute2,nftables,iptables,tcpdump,procps,curl iproute2" ;;
	tengine) echo "libpcre2-8-0,libssl3,zlib1g,procps libssl3" ;;
	*) die "unknown role $1 (roles: haproxy nginx mariadb tools tengine)" ;;
	esac
}

need_tools() {
	command -v docker >/dev/null || die "docker CLI not found (Debian package docker.io)"
	docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running? are you root?)"
	if ! command -v mmdebstrap >/dev/null; then
		echo "images: installing mmdebstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null ||
			die "cannot install mmdebstrap: apt-get install mmdebstrap"
	fi
}

# derive_sources FILE: this machine's Debian deb822 stanzas (main component, Debian archive keyring or
# none), with the host's codename swapped for $SUITE in the Suites: lines. The mirror is whatever this
# machine uses; nothing about it is stored in the repository.
derive_sources() {
	local dst=$1 host
	if [[ -n ${SOURCES:-} ]]; then
		cp "$SOURCES" "$dst"
		return
	fi
	host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ -n $host ]] || die "cannot read VERSION_CODENAME from /etc/os-release: set SOURCES=FILE"
	shopt -s nullglob
	local files=(/etc/apt/sources.list.d/*.sources)
	shopt -u nullglob
	((${#files[@]})) || die "no /etc/apt/sources.list.d/*.sources (deb822) on this machine: set SOURCES=FILE"
	awk -v RS= -v ORS='\n\n' '/(^|\n)Components:[^\n]*main/ &&
		(!/(^|\n)Signed-By:/ || /(^|\n)Signed-By:[^\n]*debian-archive-keyring/)' "${files[@]}" |
		sed -E "/^Suites:/ s/(^|[[:space:]])${host}(-[a-z]+)?/\1${SUITE}\2/g" >"$dst"
	grep -q "^Suites:.*${SUITE}" "$dst" ||
		die "no Debian stanza in /etc/apt/sources.list.d/*.sources to derive $SUITE from: set SOURCES=FILE"
}

# pkg_version TAR PACKAGE: the installed version of PACKAGE in the rootfs tarball.
pkg_version() {
	# awk reads to the end: exiting early would kill tar with SIGPIPE, which pipefail reports.
	tar -xOf "$1" ./var/lib/dpkg/status | awk -v p="$2" '
		$1 == "Package:" { pk = $2 }
		$1 == "Version:" && pk == p && v == "" { v = $2 }
		END { print v }'
}

# docker_tag VERSION: a valid docker tag for a Debian version (epoch dropped, "+" and "~" become "-").
docker_tag() {
	local v=${1#*:}
	v=$(printf '%s' "$v" | tr -c 'A-Za-z0-9_.-' '-')
	printf '%s' "${v:0:128}"
}

# TENGINE_BIN is what `make tengine` built; add_tengine TAR appends it to the rootfs as
# /usr/local/sbin/tengine and sets TENGINE_VERSION.
TENGINE_BIN=build/tengine/install/sbin/nginx
add_tengine() {
	local host stage
	[[ -x $TENGINE_BIN ]] || die "no Tengine binary at $TENGINE_BIN: run \`make tengine\` first"
	host=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	[[ $SUITE == "$host" ]] || die "the tengine image needs SUITE=$host: its binary is built on this $host machine"
	TENGINE_VERSION=$(sed -n 's/^tengine //p' build/tengine/VERSION)
	[[ -n $TENGINE_VERSION ]] || die "build/tengine/VERSION names no version: run \`FORCE=1 make tengine\`"
	stage=$(mktemp -d)
	mkdir -p "$stage/usr/local/sbin"
	cp "$TENGINE_BIN" "$stage/usr/local/sbin/tengine"
	tar --append -f "$1" -C "$stage" ./usr/local/sbin/tengine
	rm -rf "$stage"
}

build_role() {
	local role=$1 pkgs main tar start ver tag image tmp
	read -r pkgs main < <(role_packages "$role")
	image=faultlab/$role
	if [[ $FORCE != 1 ]] && docker image inspect "$image:$SUITE" >/dev/null 2>&1; then
		echo "images: $image:$SUITE present ($(docker image inspect -f '{{index .Config.Labels "faultlab.version"}}' "$image:$SUITE")), skipped"
		return
	fi
	start=$(date +%s%3N)
	tar=$OUT/$SUITE/$role.tar
	# mmdebstrap picks the output format from the file name: keep the .tar extension.
	tmp=$OUT/$SUITE/.$role.partial.tar
	local how="import only: rootfs tarball reused"
	if [[ $FORCE == 1 || ! -s $tar ]]; then
		how="mmdebstrap + import"
		echo "images: building $image:$SUITE rootfs with mmdebstrap ($pkgs)"
		mmdebstrap --quiet --variant=apt --include="$pkgs" \
			--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			"$SUITE" "$tmp" "$OUT/$SUITE/sources" || die "mmdebstrap $role failed"
		mv "$tmp" "$tar"
	fi
	ver=$(pkg_version "$tar" "$main")
	[[ -n $ver ]] || die "$main is not installed in $tar"
	if [[ $role == tengine ]]; then
		add_tengine "$tar"
		main=tengine ver=$TENGINE_VERSION
	fi
	tag=$(docker_tag "$ver")
	echo "images: importing $image:$tag ($main $ver)"
	docker import \
		--change 'CMD ["sleep", "infinity"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change "LABEL faultlab.role=$role faultlab.suite=$SUITE faultlab.package=$main faultlab.version=$ver" \
		"$tar" "$image:$tag" >/dev/null
	docker tag "$image:$tag" "$image:$SUITE"
	local ms=$(($(date +%s%3N) - start)) secs
	secs=$((ms / 1000)).$((ms % 1000 / 100))
	echo "images: $image:$tag and $image:$SUITE built in $secs s ($how)"
	echo "$(date -u +%FT%TZ) $image:$SUITE $ver ${secs}s ($how)" >>"$OUT/build-times.log"
}

(($#)) || die "usage: $0 ROLE... (roles: haproxy nginx mariadb tools) | --sources FILE"
if [[ $1 == --sources ]]; then # only derive the apt sources of $SUITE into FILE (images/vm.sh uses it)
	derive_sources "${2:?--sources FILE}"
	exit
fi
need_tools
mkdir -p "$OUT/$SUITE"
derive_sources "$OUT/$SUITE/sources"
total=$(date +%s)
for r in "$@"; do
	build_role "$r"
done
echo "images: done in $(($(date +%s) - total)) s"
