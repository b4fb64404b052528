#!/bin/sh
# Runs `peerspool spool check` over every example in spool-spec/examples and
# compares each verdict with what the example's directory and name promise:
#   examples/<kind>/valid/*.json            -> "<path>: ok..."          (exit 0)
#   examples/<kind>/invalid/<code>[-x].json -> "<path>: rejected <code>: ..." (exit 1)
# Outbox examples are judged with owner "alice". The binary is $PEERSPOOL_BIN,
# default `peerspool` from PATH. Exit 0 when every example conforms.
# File-level cases (symlink, FIFO, owner, links, mode, size) are not stored;
# tests/spec_examples/ builds them.
set -u
BIN=${PEERSPOOL_BIN:-peerspool}
EX=$(cd "$(dirname "$0")" && pwd)/examples
CODES="bad-file-name not-regular-file foreign-owner multiple-links writable-by-others too-large
unreadable not-utf8 invalid-json too-deep not-an-object missing-field wrong-type empty-text
topic-too-long bad-version bad-name bad-id self-send invalid-profile"

work=$(mktemp -d) || exit 2
trap 'rm -rf "$work"' EXIT INT TERM
PEERSPOOL_HOME=$work/home
export PEERSPOOL_HOME
unset PEERSPOOL_MAX_BYTES

# expected_code NAME: the longest code NAME starts with (then ".json", "-" or " ").
expected_code() {
    best=
    for c in $CODES; do
        case $1 in
            "$c".json | "$c"-* | "$c"\ *) [ ${#c} -gt ${#best} ] && best=$c ;;
        esac
    done
    printf '%s' "$best"
}

total=0 bad=0
for kind in task outbox peer; do
    set -- --kind "$kind"
    [ "$kind" = outbox ] && set -- "$@" --owner alice
    for verdict in valid invalid; do
        mkdir -p "$work/$kind/$verdict"
        for f in "$EX/$kind/$verdict"/*.json; do
            [ -e "$f" ] || continue
            name=$(basename "$f")
            # A private copy: a checkout under umask 002 is group-writable,
            # which is itself a rejection (writable-by-others).
            copy=$work/$kind/$verdict/$name
            cp "$f" "$copy" && chmod 600 "$copy"
            out=$("$BIN" spool check "$@" "$copy" 2>&1)
            rc=$?
            rest=${out#"$copy: "}
            total=$((total + 1))
            if [ "$verdict" = valid ]; then
                case $rest in
                    ok | "ok "*) [ $rc -eq 0 ] && continue ;;
                esac
                want=ok
            else
                want=$(expected_code "$name")
                case $rest in
                    "rejected $want: "*) [ -n "$want" ] && [ $rc -eq 1 ] && continue ;;
                esac
                want="rejected ${want:-<no code in name>}"
            fi
            bad=$((bad + 1))
            printf 'FAIL %s/%s/%s: want %s, got (exit %s) %s\n' "$kind" "$verdict" "$name" "$want" "$rc" "$out"
        done
    done
done
printf '%s of %s examples conform\n' $((total - bad)) "$total"
[ "$bad" -eq 0 ]
