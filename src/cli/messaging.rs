use clap::Args;
use peerspool::format::OutMsg;
use peerspool::root::Root;
use peerspool::send::{self, Opts};
use peerspool::{names, state::PeerState, Error};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The peer (or, inside a session, any address) to send to
    pub peer: String,
    /// The text, or `-` to read stdin (default: stdin)
    #[arg(allow_hyphen_values = true)]
    pub text: Option<String>,
    #[arg(long)]
    pub topic: Option<String>,
    /// Sender name (outside a session; default: your user name)
    #[arg(long)]
    pub from: Option<String>,
    /// Where replies go (default: the sender)
    #[arg(long)]
    pub reply_to: Option<String>,
    /// Wait for the reply and print its text
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 1)
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
    #[arg(long)]
    pub topic: Option<String>,
}

pub fn send(root: &Root, a: SendArgs) -> anyhow::Result<i32> {
    let text = send::read_text(a.text.as_deref(), &mut std::io::stdin())?;
    root.check()?;
    if let Some(me) = send::session_peer() {
        if a.wait {
            return Err(Error::Usage("--wait is for scripts outside sessions; inside one the reply arrives as a task".into()).into());
        }
        let m = OutMsg { to: a.peer.clone(), text, reply_to: a.reply_to, topic: a.topic, in_reply_to: None };
        println!("{}", send::outbox(root, &me, &m)?);
        return Ok(0);
    }
    let from = a.from.clone().unwrap_or_else(names::local_user);
    let opts = Opts { topic: a.topic, from: Some(from.clone()), reply_to: a.reply_to.clone(), in_reply_to: None };
    let id = send::task(root, &a.peer, &text, &opts)?;
    if !a.wait {
        println!("{id}");
        return Ok(0);
    }
    let addr = a.reply_to.unwrap_or(from);
    if root.is_peer(&addr) {
        return Err(Error::Usage(format!("--wait needs a non-peer reply address, but {addr:?} is a peer (use --from or --reply-to)")).into());
    }
    let timeout = Duration::try_from_secs_f64(a.timeout).map_err(|_| Error::Usage("--timeout must be a positive number".into()))?;
    match peerspool::wait::reply(&root.inbox(&addr)?, &id, timeout)? {
        Some(m) => {
            print!("{}", m.text);
            if !m.text.ends_with('\n') {
                println!();
            }
            Ok(0)
        }
        None => {
            eprintln!("peerspool: no reply to task {id} from {} within {}s", a.peer, a.timeout);
            Ok(1)
        }
    }
}

pub fn reply(root: &Root, a: ReplyArgs) -> anyhow::Result<i32> {
    let me = send::session_peer()
        .ok_or_else(|| Error::Usage("reply works inside a peer session (PEERSPOOL_PEER is not set); use `peerspool send`".into()))?;
    let text = send::read_text(a.text.as_deref(), &mut std::io::stdin())?;
    let cur = PeerState::new(root, &me).current();
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
