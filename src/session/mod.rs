//! The agent's side: a peer's tmux session, making text inert, one
//! confirmed delivery, the turn state read off screen and transcript, and
//! one adapter per agent CLI (`runtime/`, the shape of notify's backends).
//!
//! Owns: how a session is started, read and written. It may not move queue
//! files or decide when to wake or reap: the daemon decides, this performs.

pub mod deliver;
pub mod hook;
pub mod preflight;
pub mod runtime;
pub mod sanitize;
pub mod tmux;
pub mod turn;
