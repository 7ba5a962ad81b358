#!/usr/bin/env bash
# Installs the peers `make bench-peers` compares the lab with, pinned, without making them project
# dependencies: vegeta from the Go module proxy (go install, a fixed version, into bin/peers/), and Debian's
# httperf, tcpdump, tshark, iproute2 (ss) and mininet. Idempotent and quiet when everything is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
VEGETA_VERSION=v12.13.0
export PATH=$PATH:/usr/local/go/bin

vegeta=bin/peers/vegeta
# vegeta built by go install prints no version of its own: read the module version from the binary
if ! go version -m "$vegeta" 2>/dev/null | grep -Eq "^\s+mod\s+github.com/tsenart/vegeta/v12\s+$VEGETA_VERSION\s"; then
	echo "bench/peers/install.sh: go install github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
	GOBIN=$PWD/bin/peers go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
	[ -x "$vegeta" ] || { echo "install.sh: no vegeta binary in bin/peers/" >&2; exit 1; }
fi

pkgs=(httperf tcpdump tshark iproute2 mininet bridge-utils python3)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bench/peers/install.sh: apt-get install ${missing[*]}"
	# tshark asks whether non-root users may capture: answer no, without a prompt
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
