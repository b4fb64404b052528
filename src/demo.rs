//! `peerspool demo`: a self-contained run on a temporary root. Two
//! built-in test peers (the `agent` subcommand of this very binary) show a
//! wake, deliveries, a reply routed back to a script's inbox, an ephemeral
//! worker, and an idle reap; then everything is cleaned up.

pub fn run(_keep: bool) -> anyhow::Result<i32> {
    anyhow::bail!("demo not built yet")
}
