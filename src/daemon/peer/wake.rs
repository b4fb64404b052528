//! Waking a peer: may it be woken (crash loop, setup block, invalid
//! profile), fresh or resumed (`lifecycle::wake_mode`), and the boot loop
//! that waits for the input surface and answers the known dialogs.

use super::*;

/// How a delivery found its peer's session: already live, or woken for
/// this task (logged as `woke=no|fresh|resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woke {
    Already,
    Now(WakeMode),
}

impl Woke {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Woke::Already => "no",
            Woke::Now(mode) => mode.as_str(),
        }
    }
}

impl Peer {
    pub(super) fn may_wake(&mut self, cfg: &Config) -> bool {
        let now = now_ms();
        if now < self.hold_until_ms {
            self.schedule(self.hold_until_ms);
            return false;
        }
        let reason = if self.runtime.is_none() {
            Some(match &self.profile {
                Some(p) => format!("runtime {} has no adapter in this build", p.runtime.as_str()),
                None => "peer.json is invalid".to_string(),
            })
        } else if let Some(why) = self.st.setup_block() {
            Some(self.setup_blocked(&why))
        } else if let Some(until) = lifecycle::crashloop_until(&self.st.deaths(), now, cfg.crashloop_max, cfg.crashloop_window.as_millis() as u64) {
            self.schedule(until);
            Some(format!("crash-loop: {} deaths within {}s; waking again after {}", cfg.crashloop_max, cfg.crashloop_window.as_secs(), crate::logfmt::iso8601(crate::daemon::state::from_ms(until))))
        } else {
            None
        };
        match reason {
            Some(r) => {
                if self.blocked_logged.as_deref() != Some(&r) {
                    // State first: whoever reads the log line finds it in status.
                    self.st.set_blocked(Some(&r));
                    self.lifecycle(&[("event", "wake-refused"), ("reason", &r)]);
                    self.blocked_logged = Some(r);
                }
                false
            }
            None => {
                if self.blocked_logged.take().is_some() {
                    self.st.set_blocked(None);
                }
                true
            }
        }
    }

    /// What status shows for a setup block, with the way out.
    pub(super) fn setup_blocked(&self, why: &str) -> String {
        format!("wake failed: {why}; fix it, then run `peerspool start {}`", self.name)
    }

    /// Starts a session and waits for its input surface.
    pub(super) async fn wake(&mut self, cfg: &Config, task: &Task) -> Result<WakeMode, String> {
        let (Some(p), Some(rt)) = (self.profile.clone(), self.runtime.clone()) else {
            return Err("no valid profile".into());
        };
        let park = self.st.park();
        let (mode, cause) = lifecycle::wake_mode(&WakeInputs {
            fresh_next: self.st.fresh_next(),
            ephemeral: p.wake_policy == WakePolicy::Ephemeral,
            park: park.as_ref(),
            can_resume: rt.can_resume(),
        });
        // A missing cwd, tmux or program is a configuration error, not a
        // crash: no session, no death, said once, retried after a while.
        if let Err(why) = crate::session::preflight::check(&p.cwd, &rt.argv(mode), &p.env) {
            let r = format!("{}: {why}", crate::session::preflight::CONFIG);
            if self.st.blocked().as_deref() != Some(r.as_str()) {
                self.lifecycle(&[("event", "wake-refused"), ("task", &task.id), ("reason", &r)]);
                self.st.set_blocked(Some(&r));
            }
            self.hold_until_ms = now_ms() + crate::session::preflight::RETRY_MS;
            self.schedule(self.hold_until_ms);
            return Err(r);
        }
        self.st.clear_fresh_next();
        let _ = self.st.set_park(None::<&Park>);
        let sh = self.sh.clone();
        let permit = sh.wakes.acquire().await.ok();
        let started = Instant::now();
        let booted = self.boot(cfg, &p, rt.as_ref(), mode).await;
        self.st.set_booting(None);
        drop(permit);
        match booted {
            Ok(()) => {
                let ms = started.elapsed().as_millis().to_string();
                self.lifecycle(&[("event", "wake"), ("mode", mode.as_str()), ("cause", cause), ("task", &task.id), ("boot_ms", &ms)]);
                if self.blocked_logged.is_none() {
                    self.st.set_blocked(None);
                }
                Ok(mode)
            }
            // Cut short by stop, a changed profile or a reload: not the
            // program's failure, so no death and no block.
            Err(e) if self.boot_interrupt().is_some() => {
                let why = e.reason().to_string();
                self.lifecycle(&[("event", "wake-interrupted"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &started.elapsed().as_millis().to_string())]);
                self.end_session(&why, false, false).await;
                Err(why)
            }
            Err(WakeError::Setup(why)) => {
                let boot_ms = started.elapsed().as_millis().to_string();
                self.lifecycle(&[("event", "wake-failed"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &boot_ms), ("blocked", "yes")]);
                // Retrying cannot change this verdict: no death, no retry.
                self.st.set_setup_block(Some(&why));
                let shown = self.setup_blocked(&why);
                self.st.set_blocked(Some(&shown));
                self.blocked_logged = Some(shown);
                self.discard_session().await;
                Err(why)
            }
            Err(WakeError::Failed(why)) if crate::fsx::out_of_fds(&why) => {
                // The daemon's fault, not the peer's: no death, no block.
                self.lifecycle(&[("event", "wake-deferred"), ("task", &task.id), ("reason", &format!("daemon out of file descriptors: {why}"))]);
                self.end_session("daemon-fault", false, false).await;
                self.hold_until_ms = now_ms() + 1000;
                self.schedule(self.hold_until_ms);
                Err(why)
            }
            Err(WakeError::Failed(why)) => {
                self.lifecycle(&[("event", "wake-failed"), ("mode", mode.as_str()), ("task", &task.id), ("reason", &why), ("boot_ms", &started.elapsed().as_millis().to_string())]);
                // Shown by `peerspool status` until a wake succeeds.
                self.st.set_blocked(Some(&format!("wake failed: {why}")));
                // A boot that leaves no live session counts as a death, or a
                // crashing program would be woken forever.
                self.end_session(&format!("boot-failed: {why}"), true, false).await;
                let backoff = lifecycle::retry_backoff_ms(self.st.deaths().len() as u32);
                self.hold_until_ms = now_ms() + backoff;
                self.schedule(self.hold_until_ms);
                Err(why)
            }
        }
    }

    pub(super) async fn boot(&mut self, cfg: &Config, p: &Profile, rt: &dyn Runtime, mode: WakeMode) -> Result<(), WakeError> {
        let argv = rt.argv(mode);
        let mut env: BTreeMap<String, String> = p.env.clone();
        let home = std::fs::canonicalize(&self.sh.root.path).unwrap_or_else(|_| self.sh.root.path.clone());
        env.insert("PEERSPOOL_HOME".into(), home.display().to_string());
        env.insert("PEERSPOOL_PEER".into(), self.name.clone());
        env.extend(rt.session_env()?);
        // An absolute path for `"$PEERSPOOL_BIN" reply`: agents run tools in
        // login shells, and /etc/profile may reset PATH (codex does).
        if let Ok(exe) = std::env::current_exe() {
            env.insert("PEERSPOOL_BIN".into(), exe.display().to_string());
        }
        self.tmux.kill().await;
        let launch = Launch { cwd: &p.cwd, argv: &argv, env, env_remove: rt.env_remove() };
        let now = now_ms();
        let sess = Session { woke_at_ms: now, mode, ..Default::default() };
        self.session = Some(sess.clone());
        self.live_pane = None;
        let _ = self.st.set_session(Some(&sess));
        self.tmux.start(&launch).await.map_err(|e| WakeError::Failed(format!("tmux: {e}")))?;
        let deadline = Instant::now() + cfg.boot_deadline;
        let mut gap = Duration::from_millis(10);
        let mut last_dialog = None;
        let mut answered: Option<(&'static str, String, bool, Instant)> = None;
        let mut shown = None;
        loop {
            if self.sh.stopping() {
                return Err(WakeError::Failed("daemon stopping".into()));
            }
            if let Some(why) = self.boot_interrupt() {
                return Err(WakeError::Failed(why.to_string()));
            }
            let pane = self.tmux.pane().await;
            let screen = self.tmux.capture(false).await.unwrap_or_default();
            // No answer while the server may still run (a client that could
            // not be spawned, out of descriptors): not an exit; the boot
            // deadline still bounds it.
            let unanswered = pane.is_none() && (crate::fsx::out_of_fds("") || self.tmux.server_may_run());
            if unanswered && Instant::now() < deadline {
                tokio::time::sleep(gap).await;
                continue;
            }
            if pane.as_ref().is_none_or(|p| p.dead) {
                match rt.screen(&screen) {
                    Screen::Fatal(r) => return Err(WakeError::Failed(r)),
                    Screen::Setup(r) => return Err(WakeError::Setup(r)),
                    _ => {}
                }
                let exit = Pane::exit(pane.as_ref());
                return Err(format!("program exited during boot ({exit}): {}", last_lines(&screen, 2)).into());
            }
            match rt.screen(&screen) {
                Screen::Ready => return Ok(()),
                Screen::Fatal(r) => return Err(WakeError::Failed(r)),
                Screen::Setup(r) => return Err(WakeError::Setup(r)),
                // Keys go to a dialog only once its screen has changed since
                // the last answer: a slow program still showing the dialog
                // would take a second Enter on the next one (claude's
                // bypass dialog defaults to "No, exit"). An answer that
                // changed nothing in 3 s was lost and is sent again.
                // Likewise a dialog already confirmed with Enter that is still
                // drawn (a redraw before the next screen) is left alone.
                Screen::Dialog { name, .. }
                    if answered.as_ref().is_some_and(|(n, s, enter, at)| (*s == screen || (*n == name && *enter)) && at.elapsed() < DIALOG_RESEND) => {}
                Screen::Dialog { name, keys } => {
                    if last_dialog != Some(name) {
                        self.lifecycle(&[("event", "dialog"), ("dialog", name), ("keys", &keys.join("+"))]);
                    }
                    last_dialog = Some(name);
                    for k in &keys {
                        let _ = self.tmux.keys(&[*k]).await;
                    }
                    answered = Some((name, screen.clone(), keys.contains(&"Enter"), Instant::now()));
                    gap = Duration::from_millis(300);
                }
                Screen::Booting => {}
            }
            if Instant::now() >= deadline {
                return Err(format!("boot deadline {}s passed: {}", cfg.boot_deadline.as_secs(), last_lines(&screen, 2)).into());
            }
            // Elapsed time is computed by the reader: rewritten only when
            // the screen's last line changes.
            let b = crate::daemon::state::Booting {
                since_ms: now,
                deadline_secs: cfg.boot_deadline.as_secs(),
                waiting_for: match &p.ready_pattern {
                    Some(re) => format!("ready pattern `{re}`"),
                    None => format!("the {} input prompt", p.runtime.as_str()),
                },
                last_line: last_lines(&screen, 1),
            };
            if shown.as_ref() != Some(&b) {
                self.st.set_booting(Some(&b));
                shown = Some(b);
            }
            tokio::time::sleep(gap).await;
            gap = (gap * 2).min(Duration::from_millis(500));
        }
    }
}

/// How long a dialog answer may show no effect before it is sent again.
const DIALOG_RESEND: Duration = Duration::from_secs(3);

impl Peer {
    /// Why a boot in progress must stop at once: an operator stop, a
    /// changed profile (it boots again with the new one), a reload.
    pub(super) fn boot_interrupt(&self) -> Option<&'static str> {
        if self.st.stopped() {
            Some("operator-stop")
        } else if self.profile_on_disk() != self.profile_stamp {
            Some("profile-changed")
        } else if self.relist.load(std::sync::atomic::Ordering::Relaxed) == RELIST_ALWAYS {
            Some("reload")
        } else {
            None
        }
    }
}
