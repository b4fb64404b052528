//! The last step of a task: `cur/` → `done/` after its delivery, or
//! `cur/` → `failed/` after its rejection. When that step fails (`done/`
//! replaced by a file, a read-only root, a full disk) the task is still in
//! `cur/`, where a restart's recovery looks for tasks in flight; without a
//! mark the next pass would paste a delivered task again, or judge a
//! rejected one again, forever. So a failed step is remembered here, the
//! peer's queue stops until it succeeds, and nothing in `cur/` is touched
//! meanwhile. The marks are also kept in the peer's private state, so a
//! restarted daemon does not paste those tasks again either (best effort:
//! the disk that refused the move may refuse the mark too; the in-memory
//! mark still holds for this daemon's life).

use crate::queue::spool::{self, Queue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where a claimed task has to go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Settle {
    /// Delivered (`how`: the delivery outcome logged with it).
    Done { how: String },
    /// Rejected or undeliverable, with the `.error` line.
    Failed { reason: String },
}

/// Steps that failed and wait for their directory to become usable.
#[derive(Debug, Default)]
pub struct Unsettled {
    tasks: BTreeMap<String, Settle>,
    /// Where the marks are kept across restarts.
    path: Option<PathBuf>,
}

fn apply(q: &Queue, name: &str, s: &Settle) -> crate::Result<()> {
    match s {
        Settle::Done { .. } => spool::finish(&q.cur, &q.done, name).map(drop),
        Settle::Failed { reason } => spool::fail(&q.cur, &q.failed, name, reason).map(drop),
    }
}

impl Unsettled {
    /// The marks a previous daemon left at `path`, for tasks still in `cur/`.
    pub fn load(path: PathBuf, q: &Queue) -> Unsettled {
        let mut tasks: BTreeMap<String, Settle> =
            crate::fsx::read_bounded(&path, 1 << 20).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        tasks.retain(|name, _| std::fs::symlink_metadata(q.cur.join(name)).is_ok());
        Unsettled { tasks, path: Some(path) }
    }

    fn persist(&self) {
        let Some(p) = &self.path else { return };
        if self.tasks.is_empty() {
            let _ = std::fs::remove_file(p);
        } else if let Ok(b) = serde_json::to_vec(&self.tasks) {
            let _ = crate::daemon::state::replace_file(p, &b);
        }
    }

    /// Moves `name` where `s` says. On failure the step is kept for
    /// `retry` and the reason returned: the queue must stop.
    pub fn settle(&mut self, q: &Queue, name: &str, s: Settle) -> Result<(), String> {
        match apply(q, name, &s) {
            Ok(()) => Ok(()),
            Err(e) => {
                let why = match &s {
                    Settle::Done { .. } => format!("delivered task {name} cannot be moved to done/: {e}"),
                    Settle::Failed { .. } => format!("rejected task {name} cannot be moved to failed/: {e}"),
                };
                self.tasks.insert(name.to_string(), s);
                self.persist();
                Err(why)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tries every kept step again, in name order, until one still fails.
    /// Returns the steps settled now (for the log and a remote sender's
    /// notice, also when a later one fails) and the first failure's reason.
    pub fn retry(&mut self, q: &Queue) -> (Vec<(String, Settle)>, Result<(), String>) {
        let mut done = vec![];
        let mut res = Ok(());
        while let Some((name, s)) = self.tasks.pop_first() {
            // On failure the step is kept again; the rest stay kept.
            if let Err(why) = self.settle(q, &name, s.clone()) {
                res = Err(why);
                break;
            }
            done.push((name, s));
        }
        self.persist();
        (done, res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue() -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        let r = crate::root::Root::new(d.path().join("r"));
        r.ensure().unwrap();
        let p = r.peer("w").unwrap();
        r.ensure_peer_dirs(&p).unwrap();
        (d, Queue::spool(&p))
    }

    /// A file where the directory was: every move into it fails.
    fn unusable(dir: &std::path::Path) {
        std::fs::remove_dir(dir).unwrap();
        std::fs::write(dir, "not a directory").unwrap();
    }

    #[test]
    fn a_failed_step_is_kept_until_its_directory_is_usable() {
        let (d, q) = queue();
        std::fs::write(q.cur.join("t.json"), "{}").unwrap();
        unusable(&q.done);
        let mut u = Unsettled::default();
        let why = u.settle(&q, "t.json", Settle::Done { how: "delivered".into() }).unwrap_err();
        assert!(why.contains("done/"), "{why}");
        assert!(!u.is_empty());
        let (settled, res) = u.retry(&q);
        assert!(settled.is_empty() && res.is_err());
        // Kept across a restart.
        let marks = d.path().join("unsettled.json");
        let mut u = Unsettled::load(marks.clone(), &q);
        assert!(u.settle(&q, "t.json", Settle::Done { how: "delivered".into() }).is_err());
        let mut u = Unsettled::load(marks.clone(), &q);
        assert!(!u.is_empty(), "the mark survives a restart");
        assert!(q.cur.join("t.json").exists(), "still in cur/, held by the mark");
        std::fs::remove_file(&q.done).unwrap();
        std::fs::create_dir(&q.done).unwrap();
        let (settled, res) = u.retry(&q);
        assert_eq!((settled.len(), res), (1, Ok(())));
        assert!(u.is_empty() && q.done.join("t.json").exists());
        assert!(!marks.exists(), "marks removed once settled");
    }

    /// A step settled before one that still fails is reported, so its log
    /// line and a remote sender's notice are not lost with the failure.
    #[test]
    fn steps_settled_before_a_failing_one_are_reported() {
        let (_d, q) = queue();
        for n in ["a.json", "b.json"] {
            std::fs::write(q.cur.join(n), "{}").unwrap();
        }
        unusable(&q.failed);
        unusable(&q.done);
        let mut u = Unsettled::default();
        let rejected = Settle::Failed { reason: "too-large".into() };
        assert!(u.settle(&q, "a.json", rejected.clone()).is_err());
        assert!(u.settle(&q, "b.json", Settle::Done { how: "delivered".into() }).is_err());
        std::fs::remove_file(&q.failed).unwrap();
        std::fs::create_dir(&q.failed).unwrap();
        let (settled, res) = u.retry(&q);
        assert_eq!(settled, vec![("a.json".to_string(), rejected)]);
        assert!(res.is_err_and(|why| why.contains("b.json")));
        assert!(q.failed.join("a.json").exists() && q.cur.join("b.json").exists() && !u.is_empty());
    }
}
