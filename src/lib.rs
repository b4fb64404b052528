//! peerspool: a host daemon that keeps a team of AI coding agents
//! reachable. The filesystem is the interface: tasks are JSON files in a
//! peer's spool, replies are JSON files in its outbox.
//!
//! The modules follow the path of a message: a writer puts it in a `queue`;
//! the `daemon` picks it up and delivers it into a peer's `session`; the
//! agent's answer goes back through the queue. The `registry` says which
//! peers exist and how they run; `install` wires peerspool into the
//! machine; the CLI (in the binary) is a thin layer over all of them.

// Foundations: errors, where things live, settings, safe file access, logs.
pub mod config;
pub mod error;
pub mod fsx;
pub mod logfmt;
pub mod root;

pub use error::{Error, Result};

// The public contract on disk: names, formats, queue directories, writers.
pub mod queue;

// Which peers exist and how each is launched.
pub mod registry;

// The agent side: tmux, delivery, turn state, per-CLI runtimes.
pub mod session;

// The daemon: dispatcher, per-peer loops, lifecycle decisions, state.
pub mod daemon;

// Installing into the machine: service files, agent hooks.
pub mod install;

// The self-contained demo and its built-in test agent.
pub mod demo;

// Between hosts: the NATS JetStream bridge (on when a NATS URL is set).
pub mod bridge;
