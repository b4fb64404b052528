#!/usr/bin/env bash
# The naive alternative peerspool is measured against: watch a spool
# directory and type each task's text into a tmux pane.
#   baseline.sh SPOOL_NEW_DIR TMUX_SOCKET TARGET_PANE
# Written the way such a loop usually is (inotify-tools, jq, send-keys);
# bench/sysbench.rs runs it in the same run as the daemon.
set -u
dir=$1 sock=$2 target=$3
mkdir -p "$dir/../done"
inotifywait -m -e moved_to --format '%f' "$dir" | while IFS= read -r f; do
  case $f in *.json) ;; *) continue ;; esac
  text=$(jq -r .text "$dir/$f")
  tmux -S "$sock" send-keys -t "$target" "$text" Enter
  mv "$dir/$f" "$dir/../done/$f"
done
