//! What a history entry says happened: whether a communication reached
//! anyone (and so counts toward a cap), and whether a call was a telephone
//! conversation with the borrower (and so starts a quiet period).
//!
//! Both read the same three fields together: the status, the technical
//! `statusDetails` and the agent's `agentOutcome`. Upstream lets the voice
//! details and outcomes that say a call connected stand with any status, so
//! a dialer may report a call that rang unanswered as `failed`. The law
//! counts such a call (comment 14(b)(3)(ii)-1: a call connects when it is
//! answered, even if it then drops, when it rings unanswered, or when it
//! reaches voicemail), so the details and the outcome are read first and the
//! status only decides when neither says anything about the connection.
//!
//! Where the fields disagree, the reading that counts (or that makes a
//! conversation) wins: an unknown or conflicting fact never makes the guard
//! more permissive.

use crate::index::Entry;
use crate::model::{AgentOutcome, Channel, Direction, Status, StatusDetails};

use super::raw::RawCounting;

/// Calls that did not connect to the dialed number (12 CFR
/// 1006.14(b)(3)(ii)), or inbound calls that reached nobody: never placed
/// calls, never conversations, unless the other field says it connected.
const NOT_CONNECTED_DETAILS: &[StatusDetails] = &[
    StatusDetails::VoiceLineBusyNoRing,
    StatusDetails::VoiceNumberDisconnected,
    StatusDetails::VoiceNumberInvalid,
    StatusDetails::VoiceFailedToInitiate,
];
const NOT_CONNECTED_OUTCOMES: &[AgentOutcome] = &[
    AgentOutcome::VoiceLineBusyNoRing,
    AgentOutcome::VoiceNumberDisconnected,
    AgentOutcome::VoiceFailedToInitiate,
];

/// Signs that a call connected, or may have: answered (even if it then
/// dropped), rang unanswered, or reached voicemail (comment
/// 14(b)(3)(ii)-1); an unexpected disconnect may have cut a call that was
/// under way, and a call dropped while queued on hold was answered. Any one of them makes the call a placed call, whatever its
/// status says.
const CONNECTED_DETAILS: &[StatusDetails] = &[
    StatusDetails::VoiceConnected,
    StatusDetails::VoiceSpokeWithFirstParty,
    StatusDetails::VoiceSpokeWithThirdParty,
    StatusDetails::VoiceLeftVoicemail,
    StatusDetails::VoiceLeftVoicemailFirstParty,
    StatusDetails::VoiceLeftVoicemailThirdParty,
    StatusDetails::VoiceReachedVoicemailNoMessageLeft,
    StatusDetails::VoiceRangNoPickup,
    StatusDetails::VoicePickedHungUp,
    StatusDetails::VoiceUnexpectedDisconnect,
];
const CONNECTED_OUTCOMES: &[AgentOutcome] = &[
    AgentOutcome::VoiceSpokeWithFirstParty,
    AgentOutcome::VoiceSpokeWithThirdParty,
    AgentOutcome::VoiceLeftVoicemail,
    AgentOutcome::VoiceReachedVoicemailNoMessageLeft,
    AgentOutcome::VoiceRangNoPickup,
    AgentOutcome::VoicePickedHungUp,
    AgentOutcome::VoiceUnexpectedDisconnect,
    // The caller hung up while on hold: the call was answered and queued,
    // so it connected; whether anyone spoke before the hold is not said,
    // so it does not rule out a conversation either.
    AgentOutcome::VoiceDisconnectedWhileQueuedOnHold,
];

/// Known facts that a connected call was not a conversation with the
/// borrower: it reached voicemail, rang unanswered, was picked up and hung
/// up at once, reached someone else, or reached no agent (an inbound call
/// outside open hours, with no agent free, or while inbound calls were off).
const NO_CONVERSATION_DETAILS: &[StatusDetails] = &[
    StatusDetails::VoiceSpokeWithThirdParty,
    StatusDetails::VoiceLeftVoicemail,
    StatusDetails::VoiceLeftVoicemailFirstParty,
    StatusDetails::VoiceLeftVoicemailThirdParty,
    StatusDetails::VoiceReachedVoicemailNoMessageLeft,
    StatusDetails::VoiceRangNoPickup,
    StatusDetails::VoicePickedHungUp,
    StatusDetails::VoiceReceivedOutsideOpenHours,
    StatusDetails::VoiceReceivedNoAgentsAvailable,
    StatusDetails::VoiceLenderDisabledInboundCalls,
];
const NO_CONVERSATION_OUTCOMES: &[AgentOutcome] = &[
    AgentOutcome::VoiceSpokeWithThirdParty,
    AgentOutcome::VoiceLeftVoicemail,
    AgentOutcome::VoiceReachedVoicemailNoMessageLeft,
    AgentOutcome::VoiceRangNoPickup,
    AgentOutcome::VoicePickedHungUp,
];

fn details_in(e: &Entry, list: &[StatusDetails]) -> bool {
    e.details.is_some_and(|d| list.contains(&d))
}

fn outcome_in(e: &Entry, list: &[AgentOutcome]) -> bool {
    e.outcome.is_some_and(|o| list.contains(&o))
}

/// True if a call's details or outcome say it connected, or may have.
fn says_connected(e: &Entry) -> bool {
    details_in(e, CONNECTED_DETAILS) || outcome_in(e, CONNECTED_OUTCOMES)
}

/// True if the default table counts an entry: it reached, or may have
/// reached, the person.
///
/// - A call whose details or outcome say it connected (answered, rang,
///   voicemail, an unexpected disconnect) counts, whatever its status.
/// - Otherwise a call that did not connect (busy, disconnected or invalid
///   number, failed to start) does not.
/// - Otherwise `failed`, `canceled` and `blockedByComplianceGuard` do not
///   count: nothing says the communication reached anyone.
/// - Everything else counts, including `scheduled` and `inProgress` (a
///   reservation holds its slot).
///
/// So an update of a reserved call to `failed` releases its slot only when
/// nothing says the call connected.
pub fn reached(e: &Entry) -> bool {
    if e.channel == Channel::Voice {
        if says_connected(e) {
            return true;
        }
        if details_in(e, NOT_CONNECTED_DETAILS) || outcome_in(e, NOT_CONNECTED_OUTCOMES) {
            return false;
        }
    }
    !matches!(e.status, Status::Failed | Status::Canceled)
        && e.details != Some(StatusDetails::BlockedByComplianceGuard)
}

/// What counts toward a cap: [`reached`], adjusted by a rule.
///
/// A rule may add statusDetails that count although failed (`alsoCount`,
/// for a message delivered and then failed, such as `emailReportedAsSpam`)
/// and statusDetails or outcomes that never count (`neverCount`,
/// `neverCountOutcomes`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counting {
    also: u64,
    never: u64,
    never_outcomes: u32,
    /// Every attempt counts (`attempts`).
    attempts: bool,
    /// Only conversations count, in either direction (`conversations`).
    conversations: bool,
}

/// The bit of a statusDetails value; the vocabulary has fewer than 64.
fn details_bit(d: StatusDetails) -> u64 {
    if d.index() < 64 { 1u64 << d.index() } else { 0 }
}

// The sets above are bits of a u64 (statusDetails) and a u32
// (agentOutcome): a larger vocabulary must widen them first.
const _: () = assert!(StatusDetails::ALL.len() <= 64);
const _: () = assert!(AgentOutcome::ALL.len() <= 32);

/// The bit of an agentOutcome value.
fn outcome_bit(o: AgentOutcome) -> u32 {
    super::bit(o.index())
}

impl Counting {
    pub(super) fn from_raw(raw: &RawCounting) -> Counting {
        let mut c = Counting::default();
        for d in &raw.also_count {
            c.also |= details_bit(*d);
        }
        for d in &raw.never_count {
            c.never |= details_bit(*d);
        }
        for o in &raw.never_count_outcomes {
            c.never_outcomes |= outcome_bit(*o);
        }
        c.attempts = raw.attempts;
        c.conversations = raw.conversations;
        c
    }

    /// True if the rule's filter covers a history entry for this table:
    /// the filter as it is, but for `conversations`, which counts a
    /// conversation whoever placed the call (the direction is not read).
    pub fn covers_entry(&self, applies: &super::Filter, e: &Entry, answers: bool) -> bool {
        if self.conversations {
            applies.covers_entry_any_direction(e, answers)
        } else {
            applies.covers_entry(e, answers)
        }
    }

    /// True if an entry counts under this table.
    pub fn counts(&self, e: &Entry) -> bool {
        if let Some(d) = e.details {
            if self.never & details_bit(d) != 0 {
                return false;
            }
            if self.also & details_bit(d) != 0 {
                return true;
            }
        }
        if let Some(o) = e.outcome
            && self.never_outcomes & outcome_bit(o) != 0
        {
            return false;
        }
        if self.conversations {
            return is_conversation(e);
        }
        if self.attempts {
            return reached(e)
                || !(e.status == Status::Canceled
                    || e.details == Some(StatusDetails::BlockedByComplianceGuard));
        }
        reached(e)
    }
}

/// True if an entry is, or may have been, a telephone conversation with
/// the borrower.
///
/// - Either field saying the first party was spoken with makes it one,
///   whatever else is said.
/// - Otherwise a known fact that it was not one rules it out: voicemail, no
///   pickup, a pickup and immediate hang-up, a third party, no agent, or a
///   call that did not connect.
/// - Otherwise a call whose details or outcome say it connected is one, in
///   either direction and whatever its status (`voiceConnected`, an
///   unexpected disconnect).
/// - Otherwise an `attempted` or `succeeded` call is one: it may have
///   connected, and an unknown outcome never makes the guard more
///   permissive.
/// - A `failed` or `canceled` call that nothing says connected is not, and
///   neither is a `scheduled` or `inProgress` call that nothing says
///   connected: it has not happened yet (a reservation is `inProgress`), and
///   its update will say what happened.
pub fn is_conversation(e: &Entry) -> bool {
    if e.channel != Channel::Voice {
        return false;
    }
    if e.outcome == Some(AgentOutcome::VoiceSpokeWithFirstParty)
        || e.details == Some(StatusDetails::VoiceSpokeWithFirstParty)
    {
        return true;
    }
    if details_in(e, NO_CONVERSATION_DETAILS)
        || outcome_in(e, NO_CONVERSATION_OUTCOMES)
        || details_in(e, NOT_CONNECTED_DETAILS)
        || outcome_in(e, NOT_CONNECTED_OUTCOMES)
    {
        return false;
    }
    if says_connected(e) {
        return true;
    }
    matches!(e.status, Status::Attempted | Status::Succeeded)
}

/// True if an outbound entry may have been sent: its status is not
/// `failed` or `canceled`, or it reached, or may have reached, the person
/// whatever its status ([`reached`]), or it was delivered and failed only
/// later (`emailReportedAsSpam`). The one-reply and one-confirmation
/// exceptions are used up by such a send; reading more sends as sent never
/// gives an exception back.
pub fn was_sent(e: &Entry) -> bool {
    e.direction == Direction::Outbound
        && (!matches!(e.status, Status::Failed | Status::Canceled)
            || reached(e)
            || e.details == Some(StatusDetails::EmailReportedAsSpam))
}

/// Never more permissive: over every status, statusDetails (and none),
/// agentOutcome (and none), direction and a voice and a text channel, the
/// new predicates say yes wherever the ones they replaced did (copied here
/// as they were), so no cap counts less, no quiet period is lost and no
/// exception comes back.
#[cfg(test)]
mod never_more_permissive {
    use super::*;
    use crate::index::{InteractionKey, Loans};
    use crate::model::ContactKind;

    /// The counting predicate before details were read first.
    fn old_counts(e: &Entry) -> bool {
        const OLD_CONNECTED_DETAILS: &[StatusDetails] = &[
            StatusDetails::VoiceConnected,
            StatusDetails::VoiceSpokeWithFirstParty,
            StatusDetails::VoiceSpokeWithThirdParty,
            StatusDetails::VoiceLeftVoicemail,
            StatusDetails::VoiceLeftVoicemailFirstParty,
            StatusDetails::VoiceLeftVoicemailThirdParty,
            StatusDetails::VoiceReachedVoicemailNoMessageLeft,
            StatusDetails::VoiceRangNoPickup,
            StatusDetails::VoicePickedHungUp,
        ];
        const OLD_CONNECTED_OUTCOMES: &[AgentOutcome] = &[
            AgentOutcome::VoiceSpokeWithFirstParty,
            AgentOutcome::VoiceSpokeWithThirdParty,
            AgentOutcome::VoiceLeftVoicemail,
            AgentOutcome::VoiceReachedVoicemailNoMessageLeft,
            AgentOutcome::VoiceRangNoPickup,
            AgentOutcome::VoicePickedHungUp,
        ];
        if matches!(e.status, Status::Failed | Status::Canceled)
            || e.details == Some(StatusDetails::BlockedByComplianceGuard)
        {
            return false;
        }
        if e.channel == Channel::Voice {
            let not_connected =
                details_in(e, NOT_CONNECTED_DETAILS) || outcome_in(e, NOT_CONNECTED_OUTCOMES);
            let connected =
                details_in(e, OLD_CONNECTED_DETAILS) || outcome_in(e, OLD_CONNECTED_OUTCOMES);
            if not_connected && !connected {
                return false;
            }
        }
        true
    }

    fn old_is_conversation(e: &Entry) -> bool {
        if e.channel != Channel::Voice || matches!(e.status, Status::Failed | Status::Canceled) {
            return false;
        }
        let spoke = e.outcome == Some(AgentOutcome::VoiceSpokeWithFirstParty)
            || e.details == Some(StatusDetails::VoiceSpokeWithFirstParty);
        let inbound_connected = e.direction == Direction::Inbound
            && e.details == Some(StatusDetails::VoiceConnected)
            && e.outcome
                .is_none_or(|o| o == AgentOutcome::VoiceSpokeWithFirstParty);
        spoke || inbound_connected
    }

    fn old_sent(e: &Entry) -> bool {
        e.direction == Direction::Outbound && !matches!(e.status, Status::Failed | Status::Canceled)
    }

    #[test]
    fn every_combination_is_at_least_as_strict() {
        let details = std::iter::once(None).chain(StatusDetails::ALL.iter().copied().map(Some));
        let details: Vec<_> = details.collect();
        let outcomes: Vec<_> = std::iter::once(None)
            .chain(AgentOutcome::ALL.iter().copied().map(Some))
            .collect();
        let mut cases = 0;
        for channel in [Channel::Voice, Channel::Text] {
            for direction in [Direction::Outbound, Direction::Inbound] {
                for status in Status::ALL {
                    for d in &details {
                        for o in &outcomes {
                            let e = Entry {
                                at: 0,
                                key: InteractionKey::default(),
                                channel,
                                direction,
                                theme: None,
                                status: *status,
                                details: *d,
                                outcome: *o,
                                contact: ContactKind::Unknown,
                                contact_value: None,
                                subject: None,
                                transactional: None,
                                previous: None,
                                loans: Loans::default(),
                            };
                            let counts = Counting::default().counts(&e);
                            assert!(!old_counts(&e) || counts, "counts less: {e:?}");
                            assert!(
                                !old_is_conversation(&e) || is_conversation(&e),
                                "no longer a conversation: {e:?}"
                            );
                            assert!(!old_sent(&e) || was_sent(&e), "not sent now: {e:?}");
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 10_000, "{cases}");
    }
}
