//! SPEC.md against the code: the rejection table and the daemon section
//! name what the code uses.

use super::*;

// ---------------------------------------------------------------- SPEC.md

/// The rows of SPEC.md's rejection-code table: (code, example .error line).
fn spec_table() -> Vec<(String, String)> {
    let spec = fs::read_to_string(spec_dir().join("SPEC.md")).unwrap();
    let mut rows = vec![];
    let mut in_table = false;
    for line in spec.lines() {
        if line.starts_with("| code |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            if line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let code = cells[0].trim_matches('`').to_string();
            let example = cells.last().unwrap().trim_matches('`').to_string();
            rows.push((code, example));
        }
    }
    rows
}

#[test]
fn every_rejection_code_is_in_the_spec_table() {
    let rows = spec_table();
    assert!(!rows.is_empty(), "SPEC.md has no `| code |` table");
    let documented: BTreeSet<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let all: BTreeSet<&str> = Reject::ALL_CODES.iter().copied().collect();
    let missing: Vec<_> = all.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&all).collect();
    assert!(
        missing.is_empty(),
        "codes missing from SPEC.md's table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "SPEC.md's table documents codes the code does not have: {stale:?}"
    );
    for (code, example) in &rows {
        assert!(
            example.starts_with(&format!("{code}: ")),
            "example for {code} must read `{code}: <detail>`: {example:?}"
        );
        assert!(!example.contains('\n'));
    }
}

#[test]
fn spec_daemon_section_names_what_the_code_uses() {
    let spec = fs::read_to_string(spec_dir().join("SPEC.md")).unwrap();
    let start = spec.find("## 10. Daemon behaviour").expect("SPEC.md lost its daemon section");
    let daemon = &spec[start..];
    for h in ["Delivery envelope", "Outbox routing", "Inbox", "Turn-end marker", "fsync", "Trust model"] {
        assert!(daemon.contains(h), "daemon section lacks {h:?}");
    }
    let marker = format!("outbox/new/{}", peerspool::session::hook::TURN_END);
    assert!(daemon.contains(&marker), "SPEC must name the turn-end marker {marker}");
    // The envelope header the spec shows is the one the daemon pastes.
    let t = peerspool::queue::format::parse_task(br#"{"text":"hi","from":"bob","topic":"t"}"#, "x1").unwrap();
    let head = peerspool::session::deliver::envelope(&t, None);
    assert!(head.starts_with("[peerspool task x1 from bob topic \"t\"]\n"), "{head:?}");
    assert!(daemon.contains("[peerspool task <id> from <from>"), "SPEC must show the envelope header");
}
