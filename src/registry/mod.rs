//! The peer registry: `peers/<name>/peer.json` profiles and removing a peer
//! while a daemon may be serving it.
//!
//! Owns: how a peer is registered, described and unregistered. It may not
//! start or end sessions itself: the daemon notices and acts.

pub mod profile;
pub mod remove;
