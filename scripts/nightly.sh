#!/usr/bin/env bash
# The nightly regression, for any CI (the GitHub workflow .github/workflows/nightly.yml calls it):
#
#   scripts/nightly.sh [SCENARIO.yaml ...]      (default: every scenarios/*.yaml)
#
# For each scenario: `faultlab run --long` (its own claims, JUnit), the HTML report, `faultlab compare` with
# results/baselines/<file name>.json (JUnit, Markdown), and the pcaps of the cells that failed. Everything goes
# under $NIGHTLY_OUT (default nightly-out/): reports/, junit/, pcaps/, runs/, logs/, and summary.md.
# It exits 1 when a scenario's claim fails or is void, a comparison finds a cell worse, or a run errs; an
# inconclusive claim or comparison is reported, not failed (more running decides it, not a red morning).
#
# Environment:
#   FAULTLAB            the binary (default bin/faultlab; `make build` makes it)
#   NIGHTLY_OUT         the output directory (default nightly-out)
#   NIGHTLY_BASELINES   the baselines' directory (default results/baselines)
#   NIGHTLY_LOCK        a lock file each run holds (flock), for a machine shared with other heavy jobs
#   NIGHTLY_QUICK=1     quick mode instead of long (to try the script out; baselines are per mode)
#   NIGHTLY_VM=0        leave out make test-vm (the guest kernel's tests; docs/kernels.md)
#   NIGHTLY_SAVE=1      save each run's baseline into NIGHTLY_BASELINES instead of comparing (to (re)make them)
#
# Time: every family's long mode together takes hours (scenarios/reload.yaml alone 12 cells x 360 s); the
# long mode of scenarios/reload-thin.yaml takes about 2 minutes (docs/reports.md).
set -uo pipefail

FAULTLAB=${FAULTLAB:-bin/faultlab}
OUT=${NIGHTLY_OUT:-nightly-out}
BASELINES=${NIGHTLY_BASELINES:-results/baselines}
MODE=--long
[ "${NIGHTLY_QUICK:-0}" = 1 ] && MODE=
if [ $# -gt 0 ]; then scenarios=("$@"); else scenarios=(scenarios/*.yaml); fi

if [ ! -x "$FAULTLAB" ]; then
	echo "nightly: $FAULTLAB is not an executable (run make build, or set FAULTLAB)" >&2
	exit 2
fi
for f in "${scenarios[@]}"; do
	[ -f "$f" ] || { echo "nightly: no scenario file $f" >&2; exit 2; }
done
mkdir -p "$OUT"/{reports,junit,pcaps,runs,logs}
summary="$OUT/summary.md"
echo "# faultlab nightly $(date -u +%Y-%m-%dT%H:%M:%SZ) (${MODE:---quick} mode)" >"$summary"
echo >>"$summary"
failed=0

# locked runs a command holding NIGHTLY_LOCK when set.
locked() {
	if [ -n "${NIGHTLY_LOCK:-}" ]; then flock "$NIGHTLY_LOCK" "$@"; else "$@"; fi
}

# note appends a line to the summary and prints it.
note() {
	echo "$*" | tee -a "$summary"
}

for f in "${scenarios[@]}"; do
	name=$(basename "$f" .yaml)
	log="$OUT/logs/$name.log"
	start=$(date +%s)
	locked "$FAULTLAB" run $MODE -q --accept-inconclusive --out "$OUT/runs" --junit "$OUT/junit/$name-run.xml" \
		"$f" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	dir=$(sed -n 's/^  directory //p' "$log" | head -1)
	if [ -z "$dir" ] || [ ! -f "$dir/results.json" ]; then
		note "- **$name**: FAILED to run (exit $rc, ${secs}s): $(tail -3 "$log" | tr '\n' ' ')"
		failed=1
		continue
	fi
	case $rc in
	0) note "- **$name**: every claim holds or is inconclusive (${secs}s, $dir)" ;;
	*)
		note "- **$name**: CLAIMS NOT MET (exit $rc, ${secs}s, $dir):"
		sed -n 's/^ *\(fails\|void\|inconclusive\): /    - \1: /p' "$log" | tee -a "$summary"
		grep -E '^faultlab: ' "$log" | grep -v 'claim(s) not met' | sed 's/^/    - /' | tee -a "$summary"
		failed=1
		;;
	esac
	"$FAULTLAB" report --format html --out "$OUT/reports/$name.html" "$dir" ||
		note "    - the HTML report failed"
	base="$BASELINES/$name.json"
	if [ "${NIGHTLY_SAVE:-0}" = 1 ]; then
		"$FAULTLAB" baseline save "$dir" --to "$base" | tee -a "$summary"
	elif [ -f "$base" ]; then
		"$FAULTLAB" compare --junit "$OUT/junit/$name-compare.xml" --out "$OUT/reports/$name-compare.md" \
			"$base" "$dir" 2>"$OUT/logs/$name-compare.err"
		crc=$?
		grep 'warning:' "$OUT/logs/$name-compare.err" | sed 's/^faultlab compare: /    - /' | tee -a "$summary"
		case $crc in
		0) note "    - compared with $base: $(sed -n 3p "$OUT/reports/$name-compare.md")" ;;
		1)
			note "    - WORSE THAN ITS BASELINE $base:"
			sed -n 's/^  \(.*\)/      - \1/p' "$OUT/logs/$name-compare.err" | tee -a "$summary"
			failed=1
			;;
		*)
			note "    - could not compare with $base: $(grep -v 'warning:' "$OUT/logs/$name-compare.err")"
			failed=1
			;;
		esac
	else
		note "    - no baseline $base: not compared (make one with NIGHTLY_SAVE=1 or faultlab baseline save)"
	fi
	# the pcaps of the cells with a failed attempt (the capture probes of the scenario, when it has any)
	command -v jq >/dev/null || { note "    - jq is missing: failing cells' pcaps not collected"; continue; }
	for cell in $(jq -r '.cells[] | select(.stats != null and .stats.failures > 0) | .name' "$dir/results.json"); do
		for p in "$dir/$cell"/rep*/*.pcap; do
			[ -f "$p" ] || continue
			rep=$(basename "$(dirname "$p")")
			mkdir -p "$OUT/pcaps/$name/$cell/$rep"
			cp "$p" "$OUT/pcaps/$name/$cell/$rep/"
		done
	done
done

# Another kernel (docs/kernels.md): the netem engine's tests in the lab's guest and the exhaustion family's
# sysctls on this kernel and the guest's (make test-vm, about 15 minutes with the guest's image build). Run with
# the whole set of scenarios only; NIGHTLY_VM=0 leaves it out.
if [ "${NIGHTLY_VM:-1}" = 1 ] && [ $# -eq 0 ]; then
	start=$(date +%s)
	FAULTLAB_KERNELS_OUT="$OUT/reports/kernels.md" locked make --no-print-directory test-vm \
		>"$OUT/logs/test-vm.log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		note "- **test-vm**: the netem engine and the exhaustion sysctls on the guest's kernel pass ($(( $(date +%s) - start ))s; $OUT/reports/kernels.md)"
	else
		note "- **test-vm**: FAILED (exit $rc): $(grep -E '^\s*(--- FAIL|.*_test.go:[0-9]+: )' "$OUT/logs/test-vm.log" | head -5 | tr '\n' ' ')"
		failed=1
	fi
fi

echo >>"$summary"
if [ $failed = 1 ]; then
	note "NIGHTLY FAILED: see the lines above; reports in $OUT/reports, JUnit in $OUT/junit"
else
	note "nightly passed: reports in $OUT/reports, JUnit in $OUT/junit"
fi
exit $failed
