//! Turn state: whether a live agent is idle at an empty input, mid-turn,
//! waiting on a dialog, or holding someone else's draft. Delivery pastes
//! only into a ready peer (one task per turn, never into a running turn or
//! onto a person's half-typed line), and reaping never ends a turn in
//! progress. Pure: a function of what the runtime's record, the turn-end
//! hook and the screen said, and of time; the peer loop gathers the facts.

/// What a peer is doing, as delivery and reaping see it.
/// Rendered lowercase (`ready`, …) in logs, state files and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnState {
    /// Idle at an empty input: a task may be pasted.
    #[default]
    Ready,
    /// Mid-turn (thinking, writing, running a tool, silent or not).
    Working,
    /// Waiting on a prompt of its own (a permission or menu).
    Dialog,
    /// Someone else's text sits in the input.
    Draft,
}

impl TurnState {
    pub fn as_str(self) -> &'static str {
        match self {
            TurnState::Ready => "ready",
            TurnState::Working => "working",
            TurnState::Dialog => "dialog",
            TurnState::Draft => "draft",
        }
    }

    /// Why a task waits, for status and the delivery log.
    pub fn why_waiting(self) -> &'static str {
        match self {
            TurnState::Ready => "",
            TurnState::Working => "the agent is mid-turn",
            TurnState::Dialog => "the agent shows a dialog",
            TurnState::Draft => "someone's draft is in the input",
        }
    }
}

/// What the screen alone says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenTurn {
    Idle,
    Busy,
    Draft,
    Dialog,
}

/// The newest turn boundary in the runtime's own record (a transcript or
/// rollout): whether a turn is open, and when the last one ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Record {
    pub open: bool,
    pub last_end_ms: Option<u64>,
}

/// Everything the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub screen: ScreenTurn,
    /// `None`: the runtime keeps no record, or it was not found.
    pub record: Option<Record>,
    /// The turn-end hook's last mark.
    pub hook_end_ms: Option<u64>,
    /// When our last paste into this session began.
    pub delivered_ms: Option<u64>,
    /// How long the screen has looked idle without changing.
    pub quiet_ms: u64,
}

/// A record that says "mid-turn" while the screen has looked idle and
/// still this long is taken as a turn that ended unrecorded (interrupted,
/// failed): the queue moves on rather than wait forever.
pub const UNRECORDED_END_MS: u64 = 20_000;

pub fn state(f: &Facts) -> TurnState {
    match f.screen {
        ScreenTurn::Dialog => return TurnState::Dialog,
        ScreenTurn::Busy => return TurnState::Working,
        _ => {}
    }
    if let Some(r) = f.record {
        let ended = r.last_end_ms.max(f.hook_end_ms);
        // Our task's turn has not been seen to end: a screen can look idle
        // between steps, or before the runtime redraws.
        let ours_open = f.delivered_ms.is_some_and(|d| ended.is_none_or(|e| e < d));
        if (r.open || ours_open) && f.quiet_ms < UNRECORDED_END_MS {
            return TurnState::Working;
        }
    }
    match f.screen {
        ScreenTurn::Draft => TurnState::Draft,
        _ => TurnState::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle() -> Facts {
        Facts { screen: ScreenTurn::Idle, record: Some(Record::default()), hook_end_ms: None, delivered_ms: None, quiet_ms: 0 }
    }

    #[test]
    fn the_screen_speaks_first_for_busy_and_dialogs() {
        assert_eq!(state(&idle()), TurnState::Ready);
        assert_eq!(state(&Facts { screen: ScreenTurn::Busy, ..idle() }), TurnState::Working);
        assert_eq!(state(&Facts { screen: ScreenTurn::Dialog, ..idle() }), TurnState::Dialog);
        assert_eq!(state(&Facts { screen: ScreenTurn::Draft, ..idle() }), TurnState::Draft);
    }

    #[test]
    fn an_open_record_is_working_even_on_an_idle_screen() {
        let f = Facts { record: Some(Record { open: true, last_end_ms: Some(10) }), ..idle() };
        assert_eq!(state(&f), TurnState::Working, "a silent tool run");
        assert_eq!(state(&Facts { quiet_ms: UNRECORDED_END_MS, ..f }), TurnState::Ready, "an unrecorded end, after a while");
    }

    #[test]
    fn our_task_is_working_until_its_turn_is_seen_to_end() {
        let f = Facts { delivered_ms: Some(100), record: Some(Record { open: false, last_end_ms: Some(50) }), ..idle() };
        assert_eq!(state(&f), TurnState::Working, "the previous turn's end does not count");
        assert_eq!(state(&Facts { record: Some(Record { open: false, last_end_ms: Some(150) }), ..f }), TurnState::Ready);
        assert_eq!(state(&Facts { hook_end_ms: Some(120), ..f }), TurnState::Ready, "the turn-end hook counts as an end");
        // No record at all (plain programs): the screen decides.
        assert_eq!(state(&Facts { record: None, ..f }), TurnState::Ready);
    }

    #[test]
    fn a_draft_waits_only_once_the_turn_is_over() {
        let f = Facts { screen: ScreenTurn::Draft, record: Some(Record { open: true, last_end_ms: None }), ..idle() };
        assert_eq!(state(&f), TurnState::Working);
        assert_eq!(state(&Facts { record: Some(Record::default()), ..f }), TurnState::Draft);
    }
}
