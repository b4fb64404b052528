//! In-process costs of the daemon's per-event work: judging a task,
//! making it inert, building the envelope, listing and claiming from a
//! spool of N files, enqueueing (with its fsyncs) and routing an outbox
//! file. `cargo bench --bench inproc`; whole-system figures: bench/run.sh.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use peerspool::session::deliver::envelope;
use peerspool::queue::format::parse_task;
use peerspool::root::Root;
use peerspool::session::sanitize::paste_text;
use peerspool::queue::spool::{self, Limits, Queue};
use std::hint::black_box;
use std::path::Path;

fn big_text(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!("word{i} \"q\" -d\n"));
        i += 1;
    }
    s.truncate(n);
    s
}

fn task_json(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"v": 1, "from": "bench", "topic": "t", "text": text})).unwrap()
}

fn judge(c: &mut Criterion) {
    let mut g = c.benchmark_group("judge");
    for (label, n) in [("100B", 100), ("64KiB", 65536)] {
        let bytes = task_json(&big_text(n));
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("parse_task", label), &bytes, |b, bytes| b.iter(|| parse_task(black_box(bytes), "0001-x").unwrap()));
        let text = big_text(n);
        g.bench_with_input(BenchmarkId::new("paste_text", label), &text, |b, t| b.iter(|| paste_text(black_box(t))));
        let t = parse_task(&bytes, "0001-x").unwrap();
        g.bench_with_input(BenchmarkId::new("envelope", label), &t, |b, t| b.iter(|| envelope(black_box(t), None)));
    }
    g.finish();
}

fn fill(dir: &Path, n: usize) {
    for i in 0..n {
        std::fs::write(dir.join(format!("{i:012}-q.json")), b"{\"text\":\"x\"}").unwrap();
    }
}

/// What one event costs a peer with N files queued: list `new/` (sorted),
/// claim the head into `cur/`, read and judge it. The claimed file is put
/// back so every iteration sees N files.
fn list_claim(c: &mut Criterion) {
    let mut g = c.benchmark_group("list_claim");
    g.sample_size(10);
    for n in [10usize, 1000, 100_000] {
        let d = tempfile::tempdir().unwrap();
        let (new, cur) = (d.path().join("new"), d.path().join("cur"));
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(&cur).unwrap();
        fill(&new, n);
        let lim = Limits::default();
        g.bench_function(BenchmarkId::new("list", n), |b| b.iter(|| spool::list(black_box(&new)).unwrap().len()));
        g.bench_function(BenchmarkId::new("list+claim+judge", n), |b| {
            b.iter(|| {
                let names = spool::list(&new).unwrap();
                let head = &names[0];
                assert!(spool::move_to(&new, &cur, head).unwrap());
                let bytes = spool::read_checked(&cur.join(head), &lim).unwrap();
                let t = parse_task(&bytes, head.trim_end_matches(".json")).unwrap();
                spool::move_to(&cur, &new, head).unwrap();
                t
            })
        });
    }
    g.finish();
}

fn enqueue_route(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable");
    g.sample_size(20);
    let d = tempfile::tempdir().unwrap();
    let root = Root::new(d.path().join("root"));
    root.ensure().unwrap();
    for name in ["a", "b"] {
        let p = root.peer(name).unwrap();
        std::fs::create_dir_all(&p.dir).unwrap();
        std::fs::write(p.profile(), br#"{"runtime":"command","cwd":"/tmp","command":["true"]}"#).unwrap();
        root.ensure_peer_dirs(&p).unwrap();
    }
    let bq = Queue::spool(&root.peer("b").unwrap());
    let body = task_json("hello");
    g.bench_function("enqueue (write, fsync, rename, fsync dir)", |b| {
        b.iter_batched(spool::unique_name, |n| bq.enqueue(&n, &body).unwrap(), BatchSize::SmallInput)
    });
    let aq = Queue::outbox(&root.peer("a").unwrap());
    let lim = Limits::default();
    let out = serde_json::to_vec(&serde_json::json!({"to": "sink", "text": "reply"})).unwrap();
    g.bench_function("route outbox file to an inbox", |b| {
        b.iter_batched(
            || {
                let n = spool::unique_name();
                std::fs::write(aq.new.join(&n), &out).unwrap();
                n
            },
            |n| peerspool::daemon::outbox::route(&root, "a", &n, &lim).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, judge, list_claim, enqueue_route);
criterion_main!(benches);
