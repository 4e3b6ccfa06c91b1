#!/usr/bin/env bash
# deploy-pipeline.sh — a worked example of shipping a new version with switchyard.
#
# Deploys to the idle colour, waits until every backend of that pool passes its
# health checks, then runs a gated progressive rollout and exits with its verdict:
#   0  promoted: the new version takes all traffic
#   4  rolled back (a gate failed, the new pool fell back, or someone aborted);
#      `switchyardctl rollout-status SERVICE` says why, with numbers
#   5  another change to the service raced ours; nothing was shifted
#   1  anything else went wrong (nothing was shifted, or the command was refused)
#
# Usage: deploy-pipeline.sh SERVICE VERSION
# Needs: switchyardctl and jq.
# Environment (all optional):
#   SWITCHYARD_SOCKET   admin socket (switchyardctl's default otherwise)
#   SWITCHYARDCTL       the switchyardctl to run (default: the one on PATH)
#   STEPS=1,5,25,50,100 HOLD=60s     the rollout plan
#   GATES="max_error_rate=0.01 max_ttfb_p99=200ms max_error_rate_vs_baseline=2 min_connections=100"
#   HEALTH_TIMEOUT=120  seconds to wait for the new pool's health
#
# Replace deploy_to_pool with your own deployment step (systemd, containers, rsync...).
set -euo pipefail

SERVICE=${1:?usage: deploy-pipeline.sh SERVICE VERSION}
VERSION=${2:?usage: deploy-pipeline.sh SERVICE VERSION}
STEPS=${STEPS:-1,5,25,50,100}
HOLD=${HOLD:-60s}
GATES=${GATES:-max_error_rate=0.01 max_ttfb_p99=200ms max_error_rate_vs_baseline=2 min_connections=100}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-120}
CTL=${SWITCHYARDCTL:-switchyardctl}

command -v jq >/dev/null || { echo "deploy-pipeline.sh needs jq (apt-get install jq)" >&2; exit 1; }

# A jq filter applied to the service's entry of `switchyardctl --json status SERVICE`.
status_field() {
    "$CTL" --json status "$SERVICE" | jq -r ".services[0] | $1"
}

deploy_to_pool() {   # $1 = colour, $2 = version. Example: one systemd unit per backend.
    local colour=$1 version=$2
    echo "deploying $version to the $colour pool of $SERVICE"
    # for unit in "app-$colour@1" "app-$colour@2"; do
    #     sudo systemctl set-environment APP_VERSION="$version" && sudo systemctl restart "$unit"
    # done
}

# 1. The idle colour is the one without weight; a service mid-split is not ours to touch.
blue=$(status_field '.split.blue')
green=$(status_field '.split.green')
if [ "$green" -eq 0 ]; then idle=green
elif [ "$blue" -eq 0 ]; then idle=blue
else
    echo "$SERVICE is split blue=$blue green=$green: finish or roll back that first" >&2
    exit 1
fi
echo "$SERVICE: live split blue=$blue green=$green; deploying to $idle"

# 2. Deploy, then bring the idle pool online (it may have been taken offline for the deploy).
"$CTL" pool "$SERVICE" "$idle" offline >/dev/null
deploy_to_pool "$idle" "$VERSION"
"$CTL" pool "$SERVICE" "$idle" online >/dev/null

# 3. Wait until every backend of the new pool has been checked and is up.
deadline=$((SECONDS + HEALTH_TIMEOUT))
# (`checked`: a backend has its first health-check result; until then it is only assumed up.)
until [ "$(status_field ".pools.$idle.backends | length > 0 and all(.checked and .health == \"up\")")" = true ]; do
    if [ $SECONDS -ge $deadline ]; then
        echo "$SERVICE: the $idle pool is not healthy after ${HEALTH_TIMEOUT}s; nothing was shifted" >&2
        exit 1
    fi
    sleep 1
done
echo "$SERVICE: every $idle backend is up"
# Health flips never move generation; any operator change from here on makes the rollout lose.
generation=$(status_field '.generation')

# 4. The rollout. if-generation makes it lose (exit 5) if someone changed the service
#    since we looked; --wait prints progress and exits 0 promoted, 4 otherwise.
set +e
# shellcheck disable=SC2086  # GATES is a list of words
"$CTL" rollout "$SERVICE" to="$idle" steps="$STEPS" hold="$HOLD" $GATES if-generation="$generation" --wait
verdict=$?
set -e

case $verdict in
0) echo "$SERVICE: $VERSION promoted on $idle" ;;
4) echo "$SERVICE: $VERSION rolled back; why:" >&2
   "$CTL" rollout-status "$SERVICE" >&2 || true ;;
5) echo "$SERVICE: someone changed $SERVICE meanwhile (generation moved); nothing was shifted" >&2 ;;
*) echo "$SERVICE: the rollout did not run to an end (exit $verdict)" >&2 ;;
esac
exit $verdict
