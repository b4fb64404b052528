//! The queue: names, the on-disk message formats and their judgement, the
//! maildir-style directories and their heads, and the writer and reader
//! sides a script uses (`send`, `reply`, `send --wait`, inboxes, receipts).
//!
//! Owns: everything a process outside the daemon needs to hand over or
//! collect a message by the public contract (SPEC.md). It may not start
//! sessions or touch tmux; it reads the daemon's logs and state only to
//! report on a message.

pub mod format;
pub mod head;
pub mod inbox;
pub mod names;
pub mod receipt;
pub mod send;
pub mod spool;
pub mod wait;
