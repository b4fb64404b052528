//! The daemon: one process per root that watches the queues and the
//! agents' transcripts and acts on them. The dispatcher maps filesystem
//! events to peers; each peer's loop routes its outbox, supervises its
//! session and delivers its spool.
//!
//! Owns: everything that runs inside `peerspool daemon` and the state it
//! leaves under `<root>/state/`. Decisions (`lifecycle`, `hops`, and
//! `session::turn`) are pure functions of recorded facts and a clock; the
//! rest performs them. It may not define on-disk formats (`queue` does) or
//! talk to tmux except through `session`.

mod dispatch;
pub mod bookkeep;
pub mod hops;
pub mod lifecycle;
pub mod lock;
pub mod outbox;
pub mod peer;
pub mod sdnotify;
pub mod state;
pub mod verdict;
pub mod watch;

pub use dispatch::{run, run_blocking, ReadyHook, WATCH_FALLBACK};
