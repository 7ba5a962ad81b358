#!/usr/bin/env bash
# Peak RSS of `faultlab run` for the baseline cell at 5,000 conn/s: 100,000 attempts (quick) and 1,000,000
# (long). Prints one line per run and the ratio; exits non-zero when the long run peaks at 150 MB or more, or
# more than 20% above the short one (the run directory contract: memory flat in the number of attempts).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
peak() { # mode flag -> "attempts peak_kb" (faultlab's own VmHWM: getrusage would fold in the daemons' peaks)
	./bin/faultlab run -q --out "$out/runs" "$@" bench/memory.yaml >"$out/log" 2>&1 || { cat "$out/log"; exit 1; }
	grep -o 'peak RSS of faultlab[^:]*: [0-9]* MB' "$out/log" | grep -o '[0-9]* MB$' | grep -o '[0-9]*' |
		awk '{ print $1 * 1024 }' >"$out/rss"
	local attempts
	attempts=$(grep -o '"attempts": [0-9]*' "$(ls -d "$out"/runs/memory/*/ | tail -1)results.json" | head -1 | grep -o '[0-9]*$')
	echo "$attempts $(cat "$out/rss")"
}
read -r a1 k1 < <(peak)
read -r a2 k2 < <(peak --long)
grep -h 'load:' "$out"/runs/memory/*/table.md | sed 's/.*load: /achieved: /'
echo "quick: $a1 attempts, peak RSS $((k1 / 1024)) MB"
echo "long:  $a2 attempts, peak RSS $((k2 / 1024)) MB"
awk -v a="$k1" -v b="$k2" 'BEGIN { printf "ratio long/quick: %.2f\n", b / a; exit !(b < 150 * 1024 && b <= 1.2 * a) }' || {
	echo "memory.sh: not flat; compare the runs' most attempts in flight above (a stall of the machine piles"
	echo "up attempts, each holding a goroutine and a read buffer: see docs/architecture.md)"
	exit 1
}
