mod common;
mod models;
mod real;
use real::{Kind, Real};
use std::time::Duration;
fn cap(r: &Real, e: bool) -> String {
    let mut c = std::process::Command::new("tmux");
    c.arg("-S").arg(r.e.socket("agent")).args(["capture-pane", "-p", "-J", "-t", "peer"]);
    if e { c.arg("-e"); }
    String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
}
fn probe(kind: Kind) {
    let Some(mut r) = Real::new(kind, "probe") else { return };
    r.add("agent", true, &[]);
    r.e.start_daemon();
    let id = r.e.send("agent", "first [[tool:4]]");
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(format!("/tmp/probe-{:?}-toolrun.txt", kind), cap(&r, false)).unwrap();
    r.await_reply(&id, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(format!("/tmp/probe-{:?}-idle-e.txt", kind), cap(&r, true)).unwrap();
    let _ = std::process::Command::new("tmux").arg("-S").arg(r.e.socket("agent")).args(["send-keys", "-t", "peer", "-l", "half typed draft"]).status();
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(format!("/tmp/probe-{:?}-draft-e.txt", kind), cap(&r, true)).unwrap();
    std::fs::write(format!("/tmp/probe-{:?}-draft.txt", kind), cap(&r, false)).unwrap();
}
#[test] fn p_claude() { probe(Kind::Claude) }
#[test] fn p_codex() { probe(Kind::Codex) }
