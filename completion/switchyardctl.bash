# bash completion for switchyardctl(1).
#
# Completes options, commands and their fixed words, and asks the running
# daemon for service names and backend addresses (`switchyardctl --json
# status`, through the same -s/-c/--tcp/--token-file the command line names).
# The JSON is read with jq, or python3 where jq is missing; without either,
# names are simply not offered. Installed as
# /usr/share/bash-completion/completions/switchyardctl.

_switchyardctl_status_json() {
    # The connection options typed so far, so completion asks the same daemon.
    local -a conn=()
    local i w
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            -s | --socket | -c | --config | --tcp | --token-file)
                conn+=("$w" "${COMP_WORDS[i + 1]}")
                ((i++))
                ;;
            --socket=* | --config=* | --tcp=* | --token-file=*) conn+=("$w") ;;
        esac
    done
    timeout 2 "${COMP_WORDS[0]}" "${conn[@]}" --json status 2>/dev/null
}

# _switchyardctl_query KIND [SERVICE [COLOUR]]: service names, or a pool's backend addresses.
_switchyardctl_query() {
    local json
    json=$(_switchyardctl_status_json) || return 0
    [[ -n $json ]] || return 0
    if command -v jq >/dev/null 2>&1; then
        case $1 in
            services) jq -r '.services[].name' <<<"$json" 2>/dev/null ;;
            backends) jq -r --arg s "$2" --arg c "$3" \
                '.services[] | select(.name == $s) | .pools | to_entries[]
                 | select($c == "" or .key == $c) | .value.backends[].address' <<<"$json" 2>/dev/null ;;
        esac
    elif command -v python3 >/dev/null 2>&1; then
        python3 -c '
import json, sys
kind, svc, colour = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(sys.stdin)
for s in d.get("services", []):
    if kind == "services":
        print(s["name"])
    elif s["name"] == svc:
        for c, pool in s.get("pools", {}).items():
            if colour in ("", c):
                for b in pool.get("backends", []):
                    print(b["address"])
' "$1" "${2-}" "${3-}" <<<"$json" 2>/dev/null
    fi
}

_switchyardctl() {
    local cur prev
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    local options="-s --socket -c --config --tcp --token-file --json --wait --check --timeout --binary -h --help -V --version"
    local commands="status split cutover rollback backend add remove pool rollout rollout-status
        rollout-history rollout-pause rollout-resume rollout-abort promote reset reload reload-check diff upgrade help"

    case $prev in
        -s | --socket | -c | --config | --token-file | --binary)
            COMPREPLY=($(compgen -f -- "$cur"))
            return
            ;;
        --tcp | --timeout) return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
        return
    fi

    # The command words typed so far, without options and their values.
    local -a words=()
    local i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case $w in
            -s | --socket | -c | --config | --tcp | --token-file | --timeout | --binary) ((i++)) ;;
            -*) ;;
            *) words+=("$w") ;;
        esac
    done

    local n=${#words[@]}
    if ((n == 0)); then
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
    fi
    local command=${words[0]}
    local change_opts="if-generation= force"
    local candidates=""
    case $command in
        help | reload | reload-check | diff | upgrade)
            [[ $command == reload ]] && candidates=$change_opts
            ;;
        status | rollout-status | rollout-history)
            ((n == 1)) && candidates=$(_switchyardctl_query services)
            ;;
        rollback | reset | rollout-pause | rollout-resume | rollout-abort | promote)
            if ((n == 1)); then candidates=$(_switchyardctl_query services); else candidates=$change_opts; fi
            ;;
        split)
            if ((n == 1)); then candidates=$(_switchyardctl_query services); else candidates="blue= green= $change_opts"; fi
            ;;
        cutover)
            case $n in
                1) candidates=$(_switchyardctl_query services) ;;
                2) candidates="blue green" ;;
                *) candidates=$change_opts ;;
            esac
            ;;
        backend | remove | add)
            case $n in
                1) candidates=$(_switchyardctl_query services) ;;
                2) candidates="blue green" ;;
                3) [[ $command == add ]] || candidates=$(_switchyardctl_query backends "${words[1]}" "${words[2]}") ;;
                *)
                    case $command in
                        backend) candidates="weight= drain disable enable $change_opts" ;;
                        add) candidates="weight= $change_opts" ;;
                        remove) candidates=$change_opts ;;
                    esac
                    ;;
            esac
            ;;
        pool)
            case $n in
                1) candidates=$(_switchyardctl_query services) ;;
                2) candidates="blue green" ;;
                *) candidates="offline online $change_opts" ;;
            esac
            ;;
        rollout)
            if ((n == 1)); then
                candidates=$(_switchyardctl_query services)
            else
                case $cur in
                    to=*) candidates="to=blue to=green" ;;
                    *) candidates="to= steps= hold= max_error_rate= max_connect_p99= max_ttfb_p99=
                        max_error_rate_vs_baseline= min_connections= max_hold= $change_opts" ;;
                esac
            fi
            ;;
    esac
    COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
    # key= candidates: no space after the '=' so the value can follow.
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
}

complete -F _switchyardctl switchyardctl
