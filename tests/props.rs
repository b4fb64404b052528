//! Property tests over what hostile writers control: the task and outbox
//! parsers and the paste sanitizer. Runs in `cargo test` (1,000 cases per
//! property; `PROPTEST_CASES` raises it).

use peerspool::queue::format::{parse_outbox, parse_task};
use peerspool::session::sanitize::paste_text;
use proptest::prelude::*;

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000), ..ProptestConfig::default() }
}

/// Characters a terminal could act on: everything below space but tab
/// and newline, DEL, and the C1 range.
fn is_control(c: char) -> bool {
    ((c as u32) < 0x20 && c != '\n' && c != '\t') || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c)
}

/// Text with plenty of escapes, bracketed-paste markers and line endings.
fn nasty_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(|c| c.to_string()),
        Just("\x1b[201~".to_string()),
        Just("\x1b[200~".to_string()),
        Just("\r\n".to_string()),
        Just("\r".to_string()),
        Just("\u{9b}".to_string()),
        Just("\x03".to_string()),
        "[ -~]{1,8}".prop_map(|s| s),
    ];
    proptest::collection::vec(piece, 0..64).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn sanitized_text_is_inert_and_keeps_printable_text(s in nasty_text()) {
        let out = paste_text(&s);
        prop_assert!(!out.contains('\x1b') && !out.contains('\r'));
        prop_assert!(!out.chars().any(is_control), "{out:?}");
        // The printable text is unchanged: same as the input with control
        // characters removed and line endings made LF.
        let expect: String = s.replace("\r\n", "\n").replace('\r', "\n").chars().filter(|&c| !is_control(c)).collect();
        prop_assert_eq!(out, expect);
    }

    #[test]
    fn task_parser_never_panics_on_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_task(&b, "stem");
        let _ = parse_outbox(&b, "alice");
    }

    #[test]
    fn accepted_tasks_satisfy_the_spec(
        text in nasty_text(),
        from in proptest::option::of("[a-z0-9][a-z0-9_-]{0,10}|[A-Z./ ]{1,5}"),
        topic in proptest::option::of(".{0,250}"),
        v in proptest::option::of(0u8..3),
    ) {
        let mut j = serde_json::json!({ "text": text });
        if let Some(f) = &from { j["from"] = f.clone().into(); }
        if let Some(t) = &topic { j["topic"] = t.clone().into(); }
        if let Some(v) = v { j["v"] = v.into(); }
        match parse_task(j.to_string().as_bytes(), "0001-x") {
            Ok(t) => {
                prop_assert!(!t.text.trim().is_empty());
                prop_assert!(peerspool::queue::names::is_valid(&t.from), "{:?}", t.from);
                prop_assert!(t.topic.as_ref().is_none_or(|x| x.chars().count() <= 200));
                prop_assert_eq!(v.unwrap_or(1), 1);
                prop_assert_eq!(t.id, "0001-x");
            }
            Err(r) => {
                let code = r.code();
                prop_assert!(peerspool::queue::format::Reject::ALL_CODES.contains(&code));
                let bad_text = text.trim().is_empty();
                let bad_from = from.as_ref().is_some_and(|f| !peerspool::queue::names::is_valid(f));
                let bad_topic = topic.as_ref().is_some_and(|x| x.chars().count() > 200);
                prop_assert!(bad_text || bad_from || bad_topic || v.is_some_and(|v| v != 1), "rejected a valid task: {code}");
            }
        }
    }

    #[test]
    fn outbox_sender_is_always_the_owner(to in "[a-z]{1,8}", from in "[a-z]{1,8}", text in "[ -~]{1,40}") {
        let j = serde_json::json!({ "to": to, "from": from, "text": text });
        if let Ok(m) = parse_outbox(j.to_string().as_bytes(), "owner") {
            prop_assert_ne!(m.to.as_str(), "owner");
            // No field of the message names its sender: routing uses the owner.
            let routed = serde_json::to_value(&m).unwrap_or_default();
            prop_assert!(routed.get("from").is_none());
        }
    }
}

#[test]
fn deeply_nested_json_is_refused_without_overflowing_the_stack() {
    for depth in [1_000, 100_000] {
        let s = format!("{{\"text\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
        let r = parse_task(s.as_bytes(), "x").expect_err("nesting refused");
        assert!(matches!(r.code(), "too-deep" | "invalid-json"), "{}", r.code());
    }
}
