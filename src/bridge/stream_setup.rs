//! The stream and this host's consumer: created when missing with the
//! documented settings, left alone when they exist (a deployment may have
//! tuned them; `doctor` reports what differs).

use super::config::StreamSettings;
use super::subject;
use super::BridgeError;
use async_nats::jetstream::{self, consumer::pull, stream};

pub fn stream_config(s: &StreamSettings) -> stream::Config {
    stream::Config {
        name: s.name.clone(),
        subjects: vec![subject::stream_wildcard(&s.prefix)],
        storage: stream::StorageType::File,
        // Each host's consumer reads disjoint subjects; a message leaves
        // the stream once its host acknowledged it.
        retention: stream::RetentionPolicy::WorkQueue,
        // Full: refuse new messages (the sender keeps them) rather than
        // drop old ones nobody has read.
        discard: stream::DiscardPolicy::New,
        max_bytes: s.max_bytes,
        max_age: s.max_age,
        max_message_size: s.max_msg_size,
        duplicate_window: s.duplicate_window,
        num_replicas: s.replicas,
        ..Default::default()
    }
}

pub async fn stream(js: &jetstream::Context, s: &StreamSettings) -> Result<stream::Stream, BridgeError> {
    match js.get_stream(&s.name).await {
        Ok(st) => Ok(st),
        Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
            js.create_stream(stream_config(s)).await.map_err(|e| BridgeError::Nats(format!("creating stream {}: {e}", s.name)))
        }
        Err(e) => Err(BridgeError::Nats(format!("stream {}: {e}", s.name))),
    }
}

pub async fn consumer(js: &jetstream::Context, stream_name: &str, prefix: &str, me: &str) -> Result<jetstream::consumer::Consumer<pull::Config>, BridgeError> {
    let cfg = super::inbound::consumer_config(prefix, me);
    let name = subject::consumer_name(me);
    let found: Result<jetstream::consumer::Consumer<pull::Config>, _> = js.get_consumer_from_stream(&name, stream_name).await;
    if let Ok(mut c) = found {
        let unacked = c.info().await.map(|i| i.num_ack_pending).unwrap_or(0);
        if unacked == 0 {
            return Ok(c);
        }
        // Messages delivered to a bridge that died (or failed to land them)
        // would come again only after ack_wait, behind newer ones. On a
        // work-queue stream acknowledged messages are gone, so a fresh
        // consumer starts at the oldest unacknowledged one: order holds,
        // and what had landed already is recognised as a duplicate.
        js.delete_consumer_from_stream(&name, stream_name).await.map_err(|e| BridgeError::Nats(format!("resetting consumer {name}: {e}")))?;
    }
    js.create_consumer_on_stream(cfg, stream_name).await.map_err(|e| BridgeError::Nats(format!("consumer {name}: {e}")))
}
