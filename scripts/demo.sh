#!/usr/bin/env bash
# Demo: serve a simulated web on loopback, crawl it into a fresh data
# directory, and print who links to its most popular domain; recrawl it 40
# days later (velocity, lost links); then crawl a second web daily through a
# burst of new referring domains, flagged as a spike, and its risk signals;
# end with the first web's anchors, top pages, inbound broken links, domain
# ranks and summary, and the one command that serves the overview page over the
# demo's data.
set -euo pipefail

BIN=${BIN:-target/release/linkgraph}
HOSTS=${HOSTS:-60}
PAGES=${PAGES:-25}
SEED=${SEED:-42}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linkgraph-demo.XXXXXX")
trap 'kill "$SIMWEB_PID" 2>/dev/null || true; wait "$SIMWEB_PID" 2>/dev/null || true' EXIT

"$BIN" simweb --listen 127.0.0.1:0 --hosts "$HOSTS" --pages-per-host "$PAGES" --seed "$SEED" \
  --info "$WORK/info" >"$WORK/simweb.out" 2>&1 &
SIMWEB_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/info" ] && break; sleep 0.1; done
[ -s "$WORK/info" ] || { echo "simweb did not start:"; cat "$WORK/simweb.out"; exit 1; }
# shellcheck disable=SC1091
. "$WORK/info"

echo "== simulated web: $HOSTS hosts x $PAGES pages on $LISTEN, seed $SEED_URL"
echo "== crawl (data in $WORK/data)"
"$BIN" crawl --seeds "$SEED_URL" --data "$WORK/data" \
  --resolve "*=$LISTEN" --allow-private-networks --per-host-rps 20 --concurrency 64 --per-ip-concurrency 0
echo
echo "== linkgraph refdomains $POPULAR_DOMAIN --data $WORK/data"
"$BIN" refdomains "$POPULAR_DOMAIN" --data "$WORK/data"
echo
echo "== first backlinks (linkgraph backlinks $POPULAR_DOMAIN --data $WORK/data --format jsonl)"
"$BIN" backlinks "$POPULAR_DOMAIN" --data "$WORK/data" --format jsonl | head -n 3

# Time passes: the simulated web moves to its next epoch (links added,
# removed, pages deleted and redirected), and 40 days later every known page
# is due for a recrawl.
exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}"
printf 'GET /__simweb/advance HTTP/1.0\r\nHost: simweb\r\n\r\n' >&3
cat <&3 >/dev/null
exec 3<&-
LATER=$(date -u -d '+40 days' +%Y-%m-%dT%H:%M:%SZ)
echo
echo "== 40 days later (LINKGRAPH_NOW=$LATER): recrawl what is due"
LINKGRAPH_NOW=$LATER "$BIN" crawl --data "$WORK/data" \
  --resolve "*=$LISTEN" --allow-private-networks --per-host-rps 20 --concurrency 64 --per-ip-concurrency 0
echo
echo "== linkgraph velocity $POPULAR_DOMAIN --bucket week"
echo "   (the first crawl discovers links of unknown age: they are not new, and no spike)"
LINKGRAPH_NOW=$LATER "$BIN" velocity "$POPULAR_DOMAIN" --data "$WORK/data" --bucket week
echo
echo "== lost backlinks (linkgraph backlinks $POPULAR_DOMAIN --status lost --format csv)"
"$BIN" backlinks "$POPULAR_DOMAIN" --data "$WORK/data" --status lost --format csv | head -n 4

# A burst: a second, sparser web where, from day 6 on, every home page links
# to one little-linked host. Crawled daily for 10 days; the first day only
# discovers (no spike), the burst day is one.
BURST_WORK="$WORK/burst"
mkdir -p "$BURST_WORK"
"$BIN" simweb --listen 127.0.0.1:0 --hosts 100 --pages-per-host 3 --seed 5 \
  --burst-epoch 6 --burst-target 99 --info "$BURST_WORK/info" >"$BURST_WORK/simweb.out" 2>&1 &
BURST_PID=$!
trap 'kill "$SIMWEB_PID" "$BURST_PID" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do [ -s "$BURST_WORK/info" ] && break; sleep 0.1; done
[ -s "$BURST_WORK/info" ] || { echo "simweb did not start:"; cat "$BURST_WORK/simweb.out"; exit 1; }
BURST_DOMAIN=$(sed -n 's/^BURST_DOMAIN=//p' "$BURST_WORK/info")
BURST_LISTEN=$(sed -n 's/^LISTEN=//p' "$BURST_WORK/info")
BURST_SEED=$(sed -n 's/^SEED_URL=//p' "$BURST_WORK/info")
echo
echo "== a burst: 10 daily crawls of a second web; from day 6 every home page links to $BURST_DOMAIN"
for day in $(seq 0 9); do
  AT=$(date -u -d "+$((day * 25)) hours" +%Y-%m-%dT%H:%M:%SZ)
  if [ "$day" -gt 0 ]; then
    exec 3<>"/dev/tcp/${BURST_LISTEN%:*}/${BURST_LISTEN##*:}"
    printf 'GET /__simweb/advance HTTP/1.0\r\nHost: simweb\r\n\r\n' >&3
    cat <&3 >/dev/null
    exec 3<&-
  fi
  LINKGRAPH_NOW=$AT "$BIN" crawl --seeds "$BURST_SEED" --data "$BURST_WORK/data" \
    --resolve "*=$BURST_LISTEN" --allow-private-networks --per-host-rps 50 --concurrency 64 \
    --per-ip-concurrency 0 --recrawl-initial 1d --recrawl-max 1d --no-progress >/dev/null
done
echo "== linkgraph velocity $BURST_DOMAIN"
LINKGRAPH_NOW=$AT "$BIN" velocity "$BURST_DOMAIN" --data "$BURST_WORK/data"
echo
echo "== linkgraph risk $BURST_DOMAIN   (referring domains with risk signals, each with its evidence; first lines)"
LINKGRAPH_NOW=$AT "$BIN" risk "$BURST_DOMAIN" --data "$BURST_WORK/data" >"$BURST_WORK/risk.txt"
head -n 9 "$BURST_WORK/risk.txt"
echo "   (linkgraph disavow $BURST_DOMAIN --data $BURST_WORK/data writes them as a disavow file)"

# Link intelligence on the first web, after its recrawl.
echo
echo "== linkgraph anchors $POPULAR_DOMAIN --limit 8"
"$BIN" anchors "$POPULAR_DOMAIN" --data "$WORK/data" --limit 8
echo
echo "== linkgraph pages $POPULAR_DOMAIN --limit 8   (top linked pages, with their HTTP status)"
"$BIN" pages "$POPULAR_DOMAIN" --data "$WORK/data" --limit 8
echo
echo "== linkgraph broken $POPULAR_DOMAIN --limit 8   (backlinks to its pages that answer 404 or 410: win them back)"
"$BIN" broken "$POPULAR_DOMAIN" --data "$WORK/data" --limit 8
echo
echo "== linkgraph rank --data $WORK/data   (PageRank, harmonic centrality and authority of every domain)"
"$BIN" rank --data "$WORK/data"
echo
echo "== linkgraph domains --limit 8   (the strongest domains of the dofollow domain graph)"
"$BIN" domains --data "$WORK/data" --limit 8
echo
echo "== linkgraph refdomains $POPULAR_DOMAIN --limit 8   (now with each referring domain's authority)"
"$BIN" refdomains "$POPULAR_DOMAIN" --data "$WORK/data" --limit 8
echo
echo "== linkgraph summary $POPULAR_DOMAIN   (the headline figures of the overview page)"
LINKGRAPH_NOW=$LATER "$BIN" summary "$POPULAR_DOMAIN" --data "$WORK/data"

# The overview page: the same figures, a weekly chart and every table,
# served with the API. The demo ends here; this serves it until Ctrl-C.
echo
echo "== see it in a browser: serve the demo's data, then open the URL"
echo "   LINKGRAPH_NOW=$LATER $BIN serve --data $WORK/data --listen 127.0.0.1:8080"
echo "   http://127.0.0.1:8080/domain/$POPULAR_DOMAIN"
