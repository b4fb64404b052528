//! Installation into the user's machine: the per-user service definitions
//! (systemd, launchd) and the agent CLIs' own turn-end hooks.
//!
//! Owns: files outside the root that peerspool writes (unit files, agent
//! settings), each written only when its content changes and removed only
//! if ours. It may not touch the queues or sessions.

pub mod hooks;
pub mod service;
