//! peerspool: a host daemon that keeps a team of AI coding agents
//! reachable. The filesystem is the interface: tasks are JSON files in a
//! peer's spool, replies are JSON files in its outbox.

pub mod config;
pub mod error;
pub mod format;
pub mod fsx;
pub mod logfmt;
pub mod names;
pub mod profile;
pub mod root;
pub mod sanitize;
pub mod spool;
pub mod head;

pub use error::{Error, Result};
pub mod lock;
pub mod send;
pub mod state;
pub mod tmux;
pub mod wait;
pub mod inbox;
pub mod remove;
pub mod preflight;
pub mod lifecycle;
pub mod turn;
pub mod runtime;
pub mod deliver;
pub mod watch;
pub mod agent;
pub mod bookkeep;
pub mod hook;
pub mod outbox;
pub mod hops;
pub mod receipt;
pub mod peer;
pub mod daemon;
pub mod demo;
pub mod sdnotify;
pub mod service;
