use clap::Args;
use peerspool::queue::format::OutMsg;
use peerspool::root::Root;
use peerspool::queue::send::{self, Opts};
use peerspool::queue::wait::{self, Outcome, Verdicts};
use peerspool::{queue::names, daemon::state::PeerState, Error};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The peer (or, inside a session, any address) to send to
    pub peer: String,
    /// The text, or `-` to read stdin (default: stdin)
    #[arg(allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Thread label (at most 200 characters)
    #[arg(long)]
    pub topic: Option<String>,
    /// Sender name (outside a session; default: your user name)
    #[arg(long)]
    pub from: Option<String>,
    /// Where replies go (default: the sender)
    #[arg(long)]
    pub reply_to: Option<String>,
    /// Wait for the reply and print its text; ends early when the daemon fails the task (exit 3), cannot wake the peer (exit 4) or its conversation is stopped by the loop guard (exit 5)
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 1; the task stays queued)
    #[arg(long, default_value_t = 600.0, requires = "wait")]
    pub timeout: f64,
}

#[derive(Args, Debug)]
pub struct ReplyArgs {
    /// The text, or `-` to read stdin (default: stdin)
    #[arg(allow_hyphen_values = true)]
    pub text: Option<String>,
    /// Recipient (default: the reply_to of the task being worked on)
    #[arg(long)]
    pub to: Option<String>,
    /// Thread label (default: the topic of the task being answered)
    #[arg(long)]
    pub topic: Option<String>,
    /// Answer this earlier task of this peer (in its spool's cur/ or done/)
    /// instead of the one being worked on
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
}

/// The task `id` this peer received, from its spool (`cur/`, then
/// `done/`; by file name first, then by the id inside).
fn received_task(root: &Root, me: &str, id: &str) -> anyhow::Result<peerspool::queue::format::Task> {
    names::check("--task", id)?;
    let p = root.peer(me)?;
    let lim = peerspool::queue::spool::Limits::default();
    let parse = |dir: &std::path::Path, name: &str| {
        let stem = name.strip_suffix(".json").unwrap_or(name);
        peerspool::queue::spool::read_checked(&dir.join(name), &lim).ok().and_then(|b| peerspool::queue::format::parse_task(&b, stem).ok())
    };
    for sub in ["cur", "done"] {
        let dir = p.spool_sub(sub);
        if let Some(t) = parse(&dir, &format!("{id}.json")).filter(|t| t.id == id) {
            return Ok(t);
        }
        let names = peerspool::queue::spool::list(&dir).unwrap_or_default();
        if let Some(t) = names.iter().filter_map(|n| parse(&dir, n)).find(|t| t.id == id) {
            return Ok(t);
        }
    }
    Err(Error::Usage(format!("no task {id} in peer {me}'s spool (cur/ or done/; done/ is pruned by age and count): name the recipient with --to")).into())
}

/// Exit codes of `send --wait` beyond the usual 0/1/2 (README, SPEC §10.4).
pub const EXIT_TASK_FAILED: i32 = 3;
pub const EXIT_PEER_BLOCKED: i32 = 4;
pub const EXIT_INTERRUPTED: i32 = 130;
pub const EXIT_LOOP_STOPPED: i32 = 5;

fn timeout(secs: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| Error::Usage(format!("--timeout {secs}: must be a positive number of seconds")))
}

pub fn send(root: &Root, a: SendArgs) -> anyhow::Result<i32> {
    // Everything is checked before anything is written: a usage error
    // must not leave a task behind.
    let wait = if a.wait { Some(timeout(a.timeout)?) } else { None };
    let me = send::session_peer();
    if me.is_some() && wait.is_some() {
        return Err(Error::Usage("--wait is for scripts outside sessions; inside one the reply arrives as a task".into()).into());
    }
    let from = a.from.clone().unwrap_or_else(names::local_user);
    let addr = a.reply_to.clone().unwrap_or_else(|| from.clone());
    let text = send::read_text(a.text.as_deref(), &mut std::io::stdin())?;
    super::check_root(root)?;
    if let Some(me) = me {
        let m = OutMsg { to: a.peer.clone(), text, reply_to: a.reply_to, topic: a.topic, in_reply_to: None };
        println!("{}", send::outbox(root, &me, &m)?);
        return Ok(0);
    }
    // `name@host`: another host's peer or inbox, through the bridge.
    let mut target = a.peer.clone();
    if a.peer.contains('@') {
        let to = peerspool::bridge::address::check("recipient", &a.peer)?;
        let host = peerspool::bridge::address::this_host()?;
        match to.remote_host(&host) {
            None => target = to.name,
            Some(_) => return send_remote(root, &host, &to, &text, a, wait, &from, &addr),
        }
    }
    let a = SendArgs { peer: target, ..a };
    if wait.is_some() {
        names::check("reply address", &addr)?;
        if root.is_peer(&addr) {
            return Err(Error::Usage(format!("--wait needs a non-peer reply address, but {addr:?} is a peer (use --from or --reply-to)")).into());
        }
    }
    let interrupt = wait.map(|_| wait::Interrupt::install()).transpose()?;
    let opts = Opts { topic: a.topic, from: Some(from), reply_to: a.reply_to.clone(), in_reply_to: None };
    let id = send::task(root, &a.peer, &text, &opts)?;
    // With --wait stdout is the reply's text alone.
    if wait.is_none() {
        println!("{id}");
    }
    for h in send::holds(root, &a.peer) {
        eprintln!("peerspool: note: task {id}: {}", h.explain(root, &a.peer));
    }
    let Some(timeout) = wait else { return Ok(0) };
    let verdicts = Verdicts {
        failed_dir: root.peer(&a.peer)?.spool_sub("failed"),
        task_file: format!("{id}.json"),
        state: PeerState::new(root, &a.peer),
    };
    let peer = &a.peer;
    let collect = format!("`peerspool inbox read --addr {addr} {id}` collects the reply when it comes");
    match wait::wait(&root.inbox(&addr)?, &id, timeout, Some(&verdicts), interrupt)? {
        Outcome::Reply(m) => {
            print!("{}", m.text);
            if !m.text.ends_with('\n') {
                println!();
            }
            Ok(0)
        }
        Outcome::Stopped(n) => {
            eprintln!("{}", n.text.trim());
            Ok(EXIT_LOOP_STOPPED)
        }
        Outcome::Failed(why) => {
            eprintln!("peerspool: task {id} failed: {why} (see {})", verdicts.failed_dir.display());
            Ok(EXIT_TASK_FAILED)
        }
        Outcome::Blocked(why) => {
            eprintln!("peerspool: peer {peer} cannot be woken: {why}; task {id} stays queued, {collect}");
            Ok(EXIT_PEER_BLOCKED)
        }
        Outcome::TimedOut => {
            eprintln!("peerspool: no reply to task {id} from {peer} within {}s; the task is still queued or in progress, {collect}", a.timeout);
            Ok(1)
        }
        Outcome::Interrupted => {
            eprintln!("peerspool: interrupted; task {id} for {peer} is still queued or in progress, {collect}");
            Ok(EXIT_INTERRUPTED)
        }
    }
}

/// `send name@host` outside a session: queued for the daemon's bridge;
/// `--wait` waits in this host's inbox, where the reply comes back.
#[allow(clippy::too_many_arguments)]
fn send_remote(root: &Root, host: &str, to: &peerspool::bridge::address::Address, text: &str, a: SendArgs, wait: Option<Duration>, from: &str, addr: &str) -> anyhow::Result<i32> {
    if peerspool::bridge::config::Config::from_env(&root.path, host)?.is_none() {
        return Err(Error::Usage(format!("{to} is on another host, and no NATS bridge is configured here (set PEERSPOOL_NATS_URL or write {}/nats.toml)", root.path.display())).into());
    }
    if wait.is_some() {
        names::check("reply address", addr)?;
        if root.is_peer(addr) {
            return Err(Error::Usage(format!("--wait needs a non-peer reply address, but {addr:?} is a peer (use --from or --reply-to)")).into());
        }
    }
    let interrupt = wait.map(|_| wait::Interrupt::install()).transpose()?;
    let id = peerspool::bridge::outbound::send(root, host, to, text, a.topic, from, a.reply_to.as_deref())?;
    if wait.is_none() {
        println!("{id}");
    }
    if peerspool::daemon::lock::running(root).is_none() {
        eprintln!("peerspool: note: task {id}: no daemon is running on {}; its bridge publishes the message when it runs", root.path.display());
    } else if let Some(v) = peerspool::bridge::status::read(root) {
        if !matches!(v.outbound, peerspool::bridge::status::Link::Connected) {
            eprintln!("peerspool: note: task {id}: {}", v.line());
        }
    }
    let Some(timeout) = wait else { return Ok(0) };
    let collect = format!("`peerspool inbox read --addr {addr} {id}` collects the reply when it comes");
    match wait::wait(&root.inbox(addr)?, &id, timeout, None, interrupt)? {
        Outcome::Reply(m) => {
            print!("{}", m.text);
            if !m.text.ends_with('\n') {
                println!();
            }
            Ok(0)
        }
        Outcome::TimedOut => {
            eprintln!("peerspool: no reply to task {id} from {to} within {}s; {collect}", a.timeout);
            Ok(1)
        }
        Outcome::Interrupted => {
            eprintln!("peerspool: interrupted; task {id} for {to} is queued or in progress, {collect}");
            Ok(EXIT_INTERRUPTED)
        }
        Outcome::Stopped(n) => {
            eprintln!("{}", n.text.trim());
            Ok(EXIT_LOOP_STOPPED)
        }
        // The other host's verdict, sent back by its daemon.
        Outcome::Failed(why) => {
            eprintln!("peerspool: task {id} for {to} failed: {why}");
            Ok(EXIT_TASK_FAILED)
        }
        Outcome::Blocked(why) => {
            eprintln!("peerspool: task {id}: {why}");
            Ok(1)
        }
    }
}

pub fn reply(root: &Root, a: ReplyArgs) -> anyhow::Result<i32> {
    let me = send::session_peer()
        .ok_or_else(|| Error::Usage("reply works inside a peer session (PEERSPOOL_PEER is not set); use `peerspool send`".into()))?;
    let answered = a.task.as_deref().map(|id| received_task(root, &me, id)).transpose()?;
    let text = send::read_text(a.text.as_deref(), &mut std::io::stdin())?;
    let cur = match answered {
        Some(t) => Some(peerspool::daemon::state::Current { id: t.id, from: t.from, reply_to: t.reply_to, topic: t.topic }),
        None => PeerState::new(root, &me).current(),
    };
    let to = match (a.to, &cur) {
        (Some(t), _) => t,
        (None, Some(c)) => c.reply_to.clone(),
        (None, None) => return Err(Error::Usage("no task is being worked on; name the recipient with --to".into()).into()),
    };
    let topic = a.topic.or_else(|| cur.as_ref().and_then(|c| c.topic.clone()));
    let m = OutMsg { to, text, reply_to: None, topic, in_reply_to: cur.map(|c| c.id) };
    println!("{}", send::outbox(root, &me, &m)?);
    Ok(0)
}
