//! `peerspool top`: a live view refreshed from the same files `status`
//! and `show` read (no socket), with keys to stop/start a peer and to
//! open the story of the task it works on. The terminal is restored on
//! every way out: q, Ctrl-C, SIGTERM/SIGHUP, a terminal that went away.
//!
//! Keys are read from the terminal here, not through crossterm's event
//! reader, which spins at full CPU re-reading end-of-file once the
//! terminal has hung up, deaf to SIGHUP and SIGTERM.

use clap::Args;
use crossterm::{cursor, execute, terminal};
use peerspool::root::Root;
use peerspool::daemon::state::{now_ms, PeerState};
use peerspool::{queue::receipt, queue::spool};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, TableState, Wrap};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Seconds between refreshes
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub interval: f64,
}

/// What a peer is doing, as one word in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    Ready,
    Working,
    Dialog,
    Draft,
    Booting,
    Stopped,
    Blocked,
    Dead,
    Asleep,
}

impl Shown {
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Ready => "ready",
            Shown::Working => "working",
            Shown::Dialog => "dialog",
            Shown::Draft => "draft",
            Shown::Booting => "booting",
            Shown::Stopped => "stopped",
            Shown::Blocked => "blocked",
            Shown::Dead => "dead",
            Shown::Asleep => "asleep",
        }
    }
}

/// A death this recent, with no session since, shows as `dead`.
const DEAD_FOR_MS: u64 = 60_000;

/// The word for a peer. The operator's stop comes first; a live session
/// says what its turn is; an asleep one is blocked, freshly dead or asleep.
pub fn shown(stopped: bool, live: bool, booting: bool, turn: Option<&str>, blocked: bool, died_ago_ms: Option<u64>) -> Shown {
    if stopped {
        return Shown::Stopped;
    }
    if live {
        return match (booting, turn) {
            (true, _) => Shown::Booting,
            (_, Some("working")) => Shown::Working,
            (_, Some("dialog")) => Shown::Dialog,
            (_, Some("draft")) => Shown::Draft,
            _ => Shown::Ready,
        };
    }
    if blocked {
        Shown::Blocked
    } else if died_ago_ms.is_some_and(|a| a < DEAD_FOR_MS) {
        Shown::Dead
    } else {
        Shown::Asleep
    }
}

/// One peer's row.
#[derive(Debug, Clone)]
struct PeerRow {
    name: String,
    shown: Shown,
    queued: usize,
    oldest_ms: Option<u64>,
    task: Option<String>,
    task_for_ms: Option<u64>,
    deaths: usize,
    note: String,
    /// The task Enter opens: in flight, else the head of the queue.
    open: Option<String>,
}

/// The end of an id, where peerspool's names differ (the start is a time).
fn tail(id: &str) -> String {
    let n = id.chars().count();
    if n <= 18 {
        return id.to_string();
    }
    format!("…{}", id.chars().skip(n - 17).collect::<String>())
}

fn age(ms: Option<u64>) -> String {
    match ms {
        None => "-".into(),
        Some(m) if m < 60_000 => format!("{}s", m / 1000),
        Some(m) if m < 3_600_000 => format!("{}m", m / 60_000),
        Some(m) => format!("{}h", m / 3_600_000),
    }
}

fn peer_row(root: &Root, name: &str, now: u64) -> anyhow::Result<PeerRow> {
    let p = super::status::peer_status(root, name)?;
    let st = PeerState::new(root, name);
    let live = p["session"] == "live";
    let turn = st.turn();
    let queue = spool::list(&root.peer(name)?.spool_sub("new")).unwrap_or_default();
    let oldest = queue.first().map(|n| n.trim_end_matches(".json").to_string());
    let oldest_ms = oldest.as_deref().and_then(receipt::name_time_ms).map(|t| now.saturating_sub(t));
    let current = p["current_task"].as_str().map(str::to_string);
    let died_ago = st.deaths().last().map(|d| now.saturating_sub(*d));
    let shown = shown(p["stopped"] == true, live, p["booting"].is_string(), turn.as_ref().map(|t| t.state.as_str()), p["blocked"].is_string(), died_ago);
    let note = [p["blocked"].as_str(), p["held"].as_str().map(|_| "outbox held (pair rate)"), turn.as_ref().and_then(|t| t.waiting.as_ref()).map(|w| w.why.as_str()), p["profile_error"].as_str()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    // The session's last task is in flight only while its turn runs.
    let task = current.clone().filter(|_| matches!(shown, Shown::Working | Shown::Dialog | Shown::Draft));
    let task_for_ms = task.as_ref().and(st.session()).and_then(|s| s.last_delivery_ms).map(|t| now.saturating_sub(t));
    let open = current.or(oldest);
    Ok(PeerRow { name: name.into(), shown, queued: queue.len(), oldest_ms, task, task_for_ms, deaths: p["recent_deaths"].as_u64().unwrap_or(0) as usize, note, open })
}

/// The last messages routed, newest last, from the delivery log's tail.
fn last_messages(root: &Root, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(root.log_dir().join("delivery.log")) else { return vec![] };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
    let mut buf = String::new();
    let _ = f.take(256 * 1024).read_to_string(&mut buf);
    let mut out: Vec<String> = buf
        .lines()
        .filter(|l| l.contains("event=route"))
        .map(receipt::parse_line)
        .filter_map(|f| {
            let g = |k: &str| f.get(k).cloned().unwrap_or_default();
            let time = g("ts").get(11..19).unwrap_or("").to_string();
            let arrow = match g("outcome").as_str() {
                "routed" => format!("{} -> {}", g("peer"), g("to")),
                "loop-limit" => format!("{} -x LOOP-LIMIT", g("peer")),
                "held" => format!("{} .. held", g("peer")),
                _ => return None,
            };
            Some(format!("{time}  {arrow:<24} hop {:<3} {}", g("hops"), tail(&g("id"))))
        })
        .collect();
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

struct App {
    root: Root,
    rows: Vec<PeerRow>,
    messages: Vec<String>,
    daemon: String,
    table: TableState,
    flash: String,
    /// The `show` overlay: its lines and scroll offset.
    overlay: Option<(String, Vec<String>, u16)>,
}

impl App {
    fn refresh(&mut self) {
        let now = now_ms();
        let names = self.root.peer_names().unwrap_or_default();
        self.rows = names.iter().filter_map(|n| peer_row(&self.root, n, now).ok()).collect();
        self.messages = last_messages(&self.root, 200);
        self.daemon = match peerspool::daemon::lock::running(&self.root) {
            Some(pid) => format!("daemon running (pid {pid})"),
            None => "daemon NOT running".into(),
        };
        let sel = self.table.selected().unwrap_or(0).min(self.rows.len().saturating_sub(1));
        self.table.select(if self.rows.is_empty() { None } else { Some(sel) });
    }

    fn selected(&self) -> Option<&PeerRow> {
        self.rows.get(self.table.selected()?)
    }

    /// `s`: the same effect as `peerspool stop` / `peerspool start`.
    fn toggle_stop(&mut self) {
        let Some(r) = self.selected().cloned() else { return };
        let stop = r.shown != Shown::Stopped;
        self.flash = match super::status::apply_stop(&self.root, &r.name, stop) {
            Ok(()) => format!("{}: {}", r.name, if stop { "stopped (tasks wait in the spool)" } else { "started" }),
            Err(e) => format!("{}: {e}", r.name),
        };
        self.refresh();
    }

    fn open_show(&mut self) {
        let Some(r) = self.selected().cloned() else { return };
        let Some(id) = r.open else {
            self.flash = format!("{}: no task in flight or queued", r.name);
            return;
        };
        match super::show::load(&self.root, &id) {
            Ok(story) => {
                let mut lines = vec![];
                super::show::render(&story, 0, &mut lines);
                self.overlay = Some((id, lines, 0));
            }
            Err(e) => self.flash = format!("show {id}: {e}"),
        }
    }
}

fn draw(f: &mut ratatui::Frame, app: &mut App) {
    let area = f.area();
    let table_h = (app.rows.len() as u16 + 3).min(area.height.saturating_sub(6)).max(4);
    let [head, peers, msgs, detail, foot] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(table_h), Constraint::Min(3), Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let clock = peerspool::logfmt::iso8601(std::time::SystemTime::now());
    f.render_widget(Paragraph::new(format!("peerspool top  {}  {}", app.daemon, clock.get(11..19).unwrap_or(""))), head);
    let rows: Vec<Row> = app
        .rows
        .iter()
        .map(|r| {
            Row::new(vec![
                r.name.clone(),
                r.shown.as_str().to_string(),
                r.queued.to_string(),
                age(r.oldest_ms),
                r.task.as_deref().map(tail).unwrap_or_else(|| "-".into()),
                age(r.task_for_ms),
                r.deaths.to_string(),
                r.note.clone(),
            ])
        })
        .collect();
    let widths = [
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(18),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    let header = Row::new(vec!["PEER", "STATE", "QUEUE", "OLDEST", "IN FLIGHT", "FOR", "DIED", "NOTE"]).style(Style::new().add_modifier(Modifier::BOLD));
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(" peers "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    f.render_stateful_widget(table, peers, &mut app.table);
    let shown = msgs.height.saturating_sub(2) as usize;
    let last: Vec<Line> = app.messages.iter().skip(app.messages.len().saturating_sub(shown)).map(|m| Line::from(m.as_str())).collect();
    f.render_widget(Paragraph::new(last).block(Block::bordered().title(" messages between peers ")), msgs);
    let sel = app.selected().map(|r| if r.note.is_empty() { format!("{}: {}", r.name, r.shown.as_str()) } else { format!("{}: {}", r.name, r.note) });
    f.render_widget(Paragraph::new(sel.unwrap_or_default()), detail);
    let keys = "q quit  up/down select  s stop/start  enter show task";
    let foot_text = if app.flash.is_empty() { keys.to_string() } else { format!("{}  | {keys}", app.flash) };
    f.render_widget(Paragraph::new(foot_text), foot);
    if let Some((id, lines, scroll)) = &app.overlay {
        let r = Rect { x: 1, y: 1, width: area.width.saturating_sub(2), height: area.height.saturating_sub(2) };
        f.render_widget(Clear, r);
        let text: Vec<Line> = lines.iter().map(|l| Line::from(l.as_str())).collect();
        let title = format!(" show {} (esc close, up/down scroll) ", id.chars().take(30).collect::<String>());
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: false }).scroll((*scroll, 0)).block(Block::bordered().title(title)), r);
    }
}

/// Raw mode and the alternate screen for as long as it lives; dropped on
/// every way out, a panic's unwinding included.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        terminal::enable_raw_mode()?;
        let s = Screen;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(s)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// A key as the view understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Enter,
    Esc,
    CtrlC,
}

/// The keys in bytes read from a raw-mode terminal. Escape sequences
/// other than the arrows are skipped whole; an ESC that ends the read is
/// the Esc key.
pub fn keys(bytes: &[u8]) -> Vec<Key> {
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match b {
            0x03 => out.push(Key::CtrlC),
            b'\r' | b'\n' => out.push(Key::Enter),
            0x1b if i >= bytes.len() || bytes[i] == 0x1b => out.push(Key::Esc),
            0x1b => {
                let intro = bytes[i];
                i += 1;
                if intro == b'[' || intro == b'O' {
                    // Parameters, then one final byte (0x40..=0x7e).
                    while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                        i += 1;
                    }
                    match bytes.get(i) {
                        Some(b'A') => out.push(Key::Up),
                        Some(b'B') => out.push(Key::Down),
                        _ => {}
                    }
                    i += 1;
                }
            }
            b if b.is_ascii_graphic() || b == b' ' => out.push(Key::Char(b as char)),
            _ => {}
        }
    }
    out
}

/// What a key does.
enum Act {
    Quit,
    Redraw,
    None,
}

fn key(app: &mut App, k: Key) -> Act {
    if k == Key::CtrlC {
        return Act::Quit;
    }
    if let Some((_, lines, scroll)) = app.overlay.as_mut() {
        match k {
            Key::Esc | Key::Enter | Key::Char('q') => app.overlay = None,
            Key::Down | Key::Char('j') => *scroll = (*scroll + 1).min(lines.len().saturating_sub(1) as u16),
            Key::Up | Key::Char('k') => *scroll = scroll.saturating_sub(1),
            _ => return Act::None,
        }
        return Act::Redraw;
    }
    let n = app.rows.len();
    match k {
        Key::Char('q') | Key::Esc => return Act::Quit,
        Key::Down | Key::Char('j') if n > 0 => app.table.select(Some((app.table.selected().unwrap_or(0) + 1).min(n - 1))),
        Key::Up | Key::Char('k') if n > 0 => app.table.select(Some(app.table.selected().unwrap_or(0).saturating_sub(1))),
        Key::Char('s') => app.toggle_stop(),
        Key::Enter => app.open_show(),
        _ => return Act::None,
    }
    Act::Redraw
}

/// What the terminal gave within `timeout`.
enum Input {
    Bytes(Vec<u8>),
    Nothing,
    /// Hung up, closed or failing: nobody is there to draw for.
    Gone,
}

fn read_input(timeout: Duration) -> Input {
    let mut pfd = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for the duration of the call.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    if r < 0 {
        return if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted { Input::Nothing } else { Input::Gone };
    }
    if r == 0 {
        return Input::Nothing;
    }
    if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 && pfd.revents & libc::POLLIN == 0 {
        return Input::Gone;
    }
    let mut buf = [0u8; 256];
    // SAFETY: reads into a buffer of the length given.
    let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    match n {
        n if n > 0 => Input::Bytes(buf[..n as usize].to_vec()),
        0 => Input::Gone,
        _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => Input::Nothing,
        _ => Input::Gone,
    }
}

pub fn run(root: &Root, a: TopArgs) -> anyhow::Result<i32> {
    super::check_root(root)?;
    if !(a.interval.is_finite() && a.interval > 0.0) {
        return Err(peerspool::Error::Usage(format!("--interval {} must be a positive number of seconds", a.interval)).into());
    }
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(peerspool::Error::Usage("top needs a terminal; for a pipe or a log use `peerspool status --watch`".into()).into());
    }
    // A write to a terminal that went away must come back as an error, so
    // the screen guard runs, not end the process where it stands.
    // SAFETY: sets the disposition of one signal; no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let resized = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGWINCH, resized.clone())?;
    let mut app = App { root: root.clone(), rows: vec![], messages: vec![], daemon: String::new(), table: TableState::default(), flash: String::new(), overlay: None };
    app.refresh();
    let screen = Screen::enter()?;
    let mut term = ratatui::Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    let every = Duration::from_secs_f64(a.interval);
    let mut next = Instant::now() + every;
    let result = (|| -> std::io::Result<()> {
        term.draw(|f| draw(f, &mut app))?;
        while !stop.load(Ordering::Relaxed) {
            let mut redraw = resized.swap(false, Ordering::Relaxed);
            match read_input(Duration::from_millis(100)) {
                Input::Gone => return Ok(()),
                Input::Nothing => {}
                Input::Bytes(b) => {
                    for k in keys(&b) {
                        match key(&mut app, k) {
                            Act::Quit => return Ok(()),
                            Act::Redraw => redraw = true,
                            Act::None => {}
                        }
                    }
                }
            }
            if redraw {
                term.draw(|f| draw(f, &mut app))?;
            }
            if Instant::now() >= next {
                next = Instant::now() + every;
                app.refresh();
                term.draw(|f| draw(f, &mut app))?;
            }
        }
        Ok(())
    })();
    drop(term);
    drop(screen);
    match result {
        Ok(()) => Ok(0),
        // The terminal went away (hang-up, closed pty): nothing to tell it.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::UnexpectedEof) || e.raw_os_error() == Some(libc::EIO) => Ok(0),
        Err(e) => Err(anyhow::anyhow!("top: terminal: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_for_a_peer() {
        assert_eq!(shown(true, true, false, Some("working"), false, None), Shown::Stopped);
        assert_eq!(shown(false, true, true, Some("working"), false, None), Shown::Booting);
        assert_eq!(shown(false, true, false, Some("working"), false, None), Shown::Working);
        assert_eq!(shown(false, true, false, Some("dialog"), false, None), Shown::Dialog);
        assert_eq!(shown(false, true, false, Some("draft"), false, None), Shown::Draft);
        assert_eq!(shown(false, true, false, None, false, Some(10)), Shown::Ready);
        assert_eq!(shown(false, false, false, None, true, Some(10)), Shown::Blocked);
        assert_eq!(shown(false, false, false, None, false, Some(10)), Shown::Dead);
        assert_eq!(shown(false, false, false, None, false, Some(DEAD_FOR_MS)), Shown::Asleep);
        assert_eq!(shown(false, false, false, None, false, None), Shown::Asleep);
    }

    #[test]
    fn keys_from_raw_bytes() {
        assert_eq!(keys(b"q"), [Key::Char('q')]);
        assert_eq!(keys(b"\x1b[A\x1b[Bs\r"), [Key::Up, Key::Down, Key::Char('s'), Key::Enter]);
        assert_eq!(keys(b"\x1bOA"), [Key::Up]);
        assert_eq!(keys(b"\x1b"), [Key::Esc]);
        assert_eq!(keys(b"\x1b\x1b"), [Key::Esc, Key::Esc]);
        // Other sequences (F5, a mouse report start) are skipped whole.
        assert_eq!(keys(b"\x1b[15~j"), [Key::Char('j')]);
        assert_eq!(keys(b"\x03"), [Key::CtrlC]);
        assert_eq!(keys(b"\x1b["), Vec::<Key>::new());
    }

    #[test]
    fn ages_read_short() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(1500)), "1s");
        assert_eq!(age(Some(120_000)), "2m");
        assert_eq!(age(Some(7_200_000)), "2h");
    }
}
