#!/usr/bin/env bash
# scripts/report-screenshot.sh [RUN_DIR] [PNG]   (make report-screenshot RUN=... SHOT=...)
#
# Renders RUN_DIR's HTML report (default: the newest run under runs/reload/), opens it in headless Chromium
# (Debian's chromium package; `make report-chromium` installs it), checks that the page has its plots and
# that every one of them loaded as an image, and saves a screenshot of the page (default
# docs/img/report-reload.png). PLOTS_MIN (default 6: failure rate, bad windows, connect CDF, reload timeline,
# socket states, drift) is the number of plots a Reload run's page must have.
set -euo pipefail
run=${1:-}
shot=${2:-docs/img/report-reload.png}
min=${PLOTS_MIN:-6}
if [ -z "$run" ]; then
	run=$(ls -d runs/reload/*/ 2>/dev/null | sort | tail -1)
fi
if [ -z "$run" ] || [ ! -f "$run/results.json" ]; then
	echo "report-screenshot: no run directory with results.json (give RUN=runs/reload/<id>)" >&2
	exit 2
fi
command -v chromium >/dev/null || { echo "report-screenshot: no chromium (make report-chromium)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
html="$tmp/report.html"
bin/faultlab report --format html --out "$html" "$run"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$tmp/profile"
	--virtual-time-budget=10000)
want=$(grep -c '<img class="plot"' "$html" || true)
loaded=$(chromium "${flags[@]}" --dump-dom "file://$html" 2>/dev/null |
	sed -n 's/.*data-plots-loaded="\([0-9]*\/[0-9]*\)".*/\1/p' | head -1)
echo "report-screenshot: $run: $want plots in the page, loaded in Chromium: ${loaded:-none}"
if [ "$want" -lt "$min" ] || [ "$loaded" != "$want/$want" ]; then
	echo "report-screenshot: FAILED: want at least $min plots, all loaded" >&2
	exit 1
fi
mkdir -p "$(dirname "$shot")"
chromium "${flags[@]}" --window-size=1280,4700 --screenshot="$shot" "file://$html" 2>/dev/null
echo "report-screenshot: saved $shot"
