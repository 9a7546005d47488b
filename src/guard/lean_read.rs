//! A start's reading of a stored interaction in place: the fields its
//! counting entry needs, read from the record's protobuf bytes as
//! borrowed texts, where decoding it whole allocated every string of the
//! record and then a typed copy of each (about half of the time of the
//! thread that reads the store at a start).
//!
//! Only what [`crate::index::Lean`] reads is read: the typed fields go
//! through the same parsers as [`crate::wire::interaction_from`] into a
//! record whose other fields are empty, and the texts (ids, loans, the
//! contact's value) are given to the index as they lie in the bytes.
//!
//! Anything this reading does not expect gives `None`, and the caller
//! decodes the record whole as before: another operation than an
//! interaction, a field it reads given twice (protobuf merges those), a
//! field it reads (or one inside it: a time's seconds, a contact's kind)
//! in a wire type that does not match, a key past 32 bits, a varint past
//! 64, a group, bytes that end early, a text
//! that is not UTF-8, a recording or a voicemail (such a record is never
//! let go), and any value the typed parsers refuse. The fields it passes
//! over are not checked: a stored record whose other fields are damaged
//! (a free-text field that is not UTF-8, say) is counted here and refused
//! when it is read whole (a Get or a List), where the whole decoding
//! refused the start.

use crate::index::{Lean, LetGo};
use crate::model::{
    AgentOutcome, Channel, Contact, ContactKind, Direction, Interaction, Status, StatusDetails,
    Subject, Theme,
};

/// The fields of a stored interaction that its counting entry needs, as
/// they lie in the record's bytes.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct LeanFields<'a> {
    pub id: &'a str,
    pub external_id: Option<&'a str>,
    pub person_id: &'a str,
    pub channel: &'a str,
    pub direction: &'a str,
    pub theme: Option<&'a str>,
    pub borrower_selected_theme: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub status: &'a str,
    pub status_details: Option<&'a str>,
    pub agent_outcome: Option<&'a str>,
    pub started_at: Option<Time>,
    pub ended_at: Option<Time>,
    pub scheduled_at_from: Option<Time>,
    pub scheduled_at_to: Option<Time>,
    pub loan_id: Option<&'a str>,
    pub loan_ids: Vec<&'a str>,
    pub is_transactional: Option<bool>,
    pub previous_interaction_id: Option<&'a str>,
    /// The contact's kind and value, when the record has a contact.
    pub contact: Option<(&'a str, &'a str)>,
    pub created_at: Option<Time>,
    pub updated_at: Option<Time>,
    pub deleted_at: Option<Time>,
}

/// A protobuf `Timestamp`'s seconds and nanoseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Time {
    seconds: i64,
    nanos: i32,
}

/// The field numbers read (`complianceguard.v1.Interaction`).
mod tag {
    pub const ID: u32 = 1;
    pub const EXTERNAL_ID: u32 = 2;
    pub const PERSON_ID: u32 = 3;
    pub const CHANNEL: u32 = 4;
    pub const DIRECTION: u32 = 5;
    pub const THEME: u32 = 6;
    pub const BORROWER_SELECTED_THEME: u32 = 7;
    pub const SUBJECT: u32 = 8;
    pub const STATUS: u32 = 9;
    pub const STATUS_DETAILS: u32 = 10;
    pub const AGENT_OUTCOME: u32 = 11;
    pub const STARTED_AT: u32 = 12;
    pub const ENDED_AT: u32 = 13;
    pub const SCHEDULED_AT_FROM: u32 = 14;
    pub const SCHEDULED_AT_TO: u32 = 15;
    pub const LOAN_ID: u32 = 16;
    pub const LOAN_IDS: u32 = 17;
    pub const IS_TRANSACTIONAL: u32 = 18;
    pub const PREVIOUS_INTERACTION_ID: u32 = 21;
    pub const CONTACT: u32 = 24;
    pub const CREATED_AT: u32 = 31;
    pub const UPDATED_AT: u32 = 32;
    pub const DELETED_AT: u32 = 33;
    pub const RECORDING: u32 = 39;
    pub const VOICEMAIL: u32 = 40;
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// Protobuf's wire format, read forward over borrowed bytes.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            // The tenth byte holds the last bit: more overflows (prost
            // refuses it too).
            if i == 9 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7F) << (7 * i);
            if b < 0x80 {
                return Some(value);
            }
        }
        None
    }

    /// The next field's number and wire type; `None` at the end too.
    fn key(&mut self) -> Option<(u32, u8)> {
        // A key is 32 bits at most (prost refuses a longer one).
        let key = self.varint().filter(|k| *k <= u64::from(u32::MAX))?;
        let tag = u32::try_from(key >> 3).ok().filter(|t| *t > 0)?;
        Some((tag, (key & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let (taken, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(taken)
    }

    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    /// Passes over a field of `wire` type; `None` for a group (never
    /// written by this release) or bytes that end early.
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.advance(8),
            LEN => self.bytes().map(|_| ()),
            FIXED32 => self.advance(4),
            _ => None,
        }
    }

    fn advance(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }
}

/// Sets `slot` once: a field given twice is not read here (protobuf
/// takes the last text and merges messages; the whole decoding does).
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value?);
    Some(())
}

/// A text field's value, `None` for another wire type.
fn text<'a>(w: &mut Wire<'a>, wire: u8) -> Option<&'a str> {
    if wire == LEN { w.text() } else { None }
}

fn time(bytes: &[u8]) -> Option<Time> {
    let mut w = Wire(bytes);
    let (mut seconds, mut nanos) = (None, None);
    while !w.0.is_empty() {
        match w.key()? {
            // int64 and int32 are varints; a negative int32 is written
            // as its 64-bit two's complement.
            (1, VARINT) => once(&mut seconds, w.varint().map(|v| v as i64))?,
            (2, VARINT) => once(&mut nanos, w.varint().map(|v| v as i32))?,
            // Either in another wire type: prost refuses it.
            (1 | 2, _) => return None,
            (_, wire) => w.skip(wire)?,
        }
    }
    Some(Time {
        seconds: seconds.unwrap_or(0),
        nanos: nanos.unwrap_or(0),
    })
}

fn contact(bytes: &[u8]) -> Option<(&str, &str)> {
    let mut w = Wire(bytes);
    let (mut kind, mut value) = (None, None);
    while !w.0.is_empty() {
        match w.key()? {
            (1, LEN) => once(&mut kind, w.text())?,
            (2, LEN) => once(&mut value, w.text())?,
            (1 | 2, _) => return None,
            (_, wire) => w.skip(wire)?,
        }
    }
    Some((kind.unwrap_or(""), value.unwrap_or("")))
}

/// The fields of the interaction a journal `Record`'s bytes hold, or
/// `None` (see the module's documentation).
pub(super) fn fields(record: &[u8]) -> Option<LeanFields<'_>> {
    let mut outer = Wire(record);
    let mut interaction = None;
    while !outer.0.is_empty() {
        match outer.key()? {
            // `Record.op.interaction`; any other operation is decoded whole.
            (1, LEN) => once(&mut interaction, outer.bytes())?,
            _ => return None,
        }
    }
    let mut w = Wire(interaction?);
    let mut f = LeanFields::default();
    let (mut id, mut person_id, mut channel, mut direction, mut status) =
        (None, None, None, None, None);
    while !w.0.is_empty() {
        let (t, wire) = w.key()?;
        if t == tag::LOAN_IDS && wire == LEN {
            f.loan_ids.push(w.text()?);
            continue;
        }
        if let Some(slot) = f.time_mut(t) {
            if wire != LEN {
                return None;
            }
            once(slot, w.bytes().and_then(time))?;
            continue;
        }
        match t {
            tag::ID => once(&mut id, text(&mut w, wire))?,
            tag::EXTERNAL_ID => once(&mut f.external_id, text(&mut w, wire))?,
            tag::PERSON_ID => once(&mut person_id, text(&mut w, wire))?,
            tag::CHANNEL => once(&mut channel, text(&mut w, wire))?,
            tag::DIRECTION => once(&mut direction, text(&mut w, wire))?,
            tag::THEME => once(&mut f.theme, text(&mut w, wire))?,
            tag::BORROWER_SELECTED_THEME => {
                once(&mut f.borrower_selected_theme, text(&mut w, wire))?
            }
            tag::SUBJECT => once(&mut f.subject, text(&mut w, wire))?,
            tag::STATUS => once(&mut status, text(&mut w, wire))?,
            tag::STATUS_DETAILS => once(&mut f.status_details, text(&mut w, wire))?,
            tag::AGENT_OUTCOME => once(&mut f.agent_outcome, text(&mut w, wire))?,
            tag::LOAN_ID => once(&mut f.loan_id, text(&mut w, wire))?,
            tag::PREVIOUS_INTERACTION_ID => {
                once(&mut f.previous_interaction_id, text(&mut w, wire))?;
            }
            tag::IS_TRANSACTIONAL if wire == VARINT => {
                once(&mut f.is_transactional, w.varint().map(|v| v != 0))?;
            }
            tag::CONTACT if wire == LEN => once(&mut f.contact, w.bytes().and_then(contact))?,
            // A record with media is never let go: decoded whole.
            tag::RECORDING | tag::VOICEMAIL => return None,
            // A field read above, with another wire type.
            tag::IS_TRANSACTIONAL | tag::CONTACT | tag::LOAN_IDS => return None,
            _ => w.skip(wire)?,
        }
    }
    f.id = id.unwrap_or("");
    f.person_id = person_id.unwrap_or("");
    f.channel = channel.unwrap_or("");
    f.direction = direction.unwrap_or("");
    f.status = status.unwrap_or("");
    Some(f)
}

impl LeanFields<'_> {
    /// The time field numbered `t`, if `t` numbers one.
    fn time_mut(&mut self, t: u32) -> Option<&mut Option<Time>> {
        Some(match t {
            tag::STARTED_AT => &mut self.started_at,
            tag::ENDED_AT => &mut self.ended_at,
            tag::SCHEDULED_AT_FROM => &mut self.scheduled_at_from,
            tag::SCHEDULED_AT_TO => &mut self.scheduled_at_to,
            tag::CREATED_AT => &mut self.created_at,
            tag::UPDATED_AT => &mut self.updated_at,
            tag::DELETED_AT => &mut self.deleted_at,
            _ => return None,
        })
    }

    /// The record these fields make, every other field empty: typed as
    /// [`crate::wire::interaction_from`] types them, `None` where it
    /// would refuse. Its texts (ids, loans, the contact's value) stay
    /// empty: they are read from the fields.
    pub(super) fn record(&self) -> Option<Interaction> {
        fn opt<T>(text: Option<&str>, parse: fn(&str) -> Option<T>) -> Option<Option<T>> {
            match text {
                None => Some(None),
                Some(t) => parse(t).map(Some),
            }
        }
        fn at(t: Option<Time>) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
            match t {
                None => Some(None),
                Some(t) => {
                    let ts = prost_types::Timestamp {
                        seconds: t.seconds,
                        nanos: t.nanos,
                    };
                    crate::wire::time("", &ts).ok().map(Some)
                }
            }
        }
        Some(Interaction {
            id: String::new(),
            external_id: None,
            person_id: String::new(),
            channel: Channel::parse(self.channel)?,
            direction: Direction::parse(self.direction)?,
            theme: opt(self.theme, Theme::parse)?,
            borrower_selected_theme: opt(self.borrower_selected_theme, Theme::parse)?,
            subject: opt(self.subject, Subject::parse)?,
            status: Status::parse(self.status)?,
            status_details: opt(self.status_details, StatusDetails::parse)?,
            agent_outcome: opt(self.agent_outcome, AgentOutcome::parse)?,
            started_at: at(self.started_at)?.unwrap_or_default(),
            ended_at: at(self.ended_at)?,
            scheduled_at_from: at(self.scheduled_at_from)?,
            scheduled_at_to: at(self.scheduled_at_to)?,
            loan_id: None,
            loan_ids: Vec::new(),
            case_ids: Vec::new(),
            is_transactional: self.is_transactional,
            sensitive: None,
            is_external: true,
            previous_interaction_id: None,
            contact_id: None,
            contact_external_id: None,
            contact: self.contact.map(|(kind, _)| Contact {
                kind: ContactKind::from_record(Some(kind).filter(|k| !k.is_empty())),
                kind_as_given: None,
                value: None,
                name: None,
            }),
            borrower: None,
            meta_data: None,
            content: None,
            failure_description_short: None,
            failure_description_long: None,
            compliance_guard_rule_id: None,
            twilio_error_code: None,
            created_at: at(self.created_at)?.unwrap_or_default(),
            updated_at: at(self.updated_at)?,
            deleted_at: at(self.deleted_at)?,
            created_by: None,
            updated_by: None,
            company_id: None,
            recording: None,
            voicemail: None,
        })
    }

    /// The record's lean form when a start lets its full record go
    /// ([`Lean::of`]), from these fields.
    pub(super) fn lean(&self, let_go: LetGo) -> Option<Lean> {
        let record = self.record()?;
        let value = self.contact.map(|(_, v)| v).filter(|v| !v.is_empty());
        Lean::of_parts(&record, value, self.external_id, let_go)
    }

    /// Every loan the record names, once each, as
    /// [`Interaction::loans`] lists them.
    pub(super) fn loans(&self) -> Vec<&str> {
        let mut loans: Vec<&str> = self.loan_id.into_iter().collect();
        for l in &self.loan_ids {
            if !loans.contains(l) {
                loans.push(l);
            }
        }
        loans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::complianceguard::v1 as pb;
    use crate::pb::journal::{Record, record::Op};
    use proptest::prelude::*;

    /// What the whole decoding makes of a record's bytes: its lean form
    /// and texts, as the start kept them before reading in place.
    fn whole(bytes: &[u8], let_go: LetGo) -> Option<(Lean, Vec<String>)> {
        let record = <Record as prost::Message>::decode(bytes).ok()?;
        let Some(Op::Interaction(i)) = record.op else {
            return None;
        };
        let r = crate::wire::interaction_from(i).ok()?;
        let lean = Lean::of(&r, let_go)?;
        let mut texts = vec![r.person_id.clone(), r.id.clone()];
        texts.extend(r.previous_interaction_id.clone());
        texts.extend(r.loans().into_iter().map(str::to_owned));
        Some((lean, texts))
    }

    /// The same, read in place.
    fn in_place(bytes: &[u8], let_go: LetGo) -> Option<(Lean, Vec<String>)> {
        let f = fields(bytes)?;
        let lean = f.lean(let_go)?;
        let mut texts = vec![f.person_id.to_owned(), f.id.to_owned()];
        texts.extend(f.previous_interaction_id.map(str::to_owned));
        texts.extend(f.loans().into_iter().map(str::to_owned));
        Some((lean, texts))
    }

    /// One of `names`, or a value no parser takes, or nothing.
    fn word(names: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            6 => proptest::sample::select(names).prop_map(|n| Some(n.to_owned())),
            1 => Just(Some("bogus".to_owned())),
            1 => Just(Some(String::new())),
            2 => Just(None),
        ]
    }

    fn time() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
        prop_oneof![
            3 => (1_500_000_000i64..1_800_000_000, 0i32..1_000_000_000)
                .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
            // Out of what a time can hold, both ways.
            1 => prop_oneof![
                Just(prost_types::Timestamp { seconds: 1, nanos: -1 }),
                Just(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }),
                Just(prost_types::Timestamp { seconds: -5, nanos: 7 }),
            ]
            .prop_map(Some),
            2 => Just(None),
        ]
    }

    fn text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[A-Za-z0-9@+ .()-]{0,12}")
    }

    prop_compose! {
        fn interaction()(
            (id, external_id, person_id, previous) in (text(), text(), text(), text()),
            (channel, direction, status) in (
                word(Channel::NAMES), word(Direction::NAMES), word(Status::NAMES)),
            (theme, selected, subject) in (
                word(Theme::NAMES), word(Theme::NAMES), word(Subject::NAMES)),
            (details, outcome) in (word(StatusDetails::NAMES), word(AgentOutcome::NAMES)),
            (started, ended, from, to) in (time(), time(), time(), time()),
            (created, updated, deleted) in (time(), time(), prop_oneof![4 => Just(None), 1 => time()]),
            (loan_id, loan_ids) in (text(), proptest::collection::vec("L[0-9]", 0..4)),
            transactional in proptest::option::of(any::<bool>()),
            contact in proptest::option::of((
                prop_oneof![Just(""), Just("mobilePhone"), Just("email"), Just("pager")],
                text(),
            )),
            (notes, company, media) in (text(), text(), 0u8..8),
        ) -> pb::Interaction {
            pb::Interaction {
                id: id.unwrap_or_default(),
                external_id,
                person_id: person_id.unwrap_or_default(),
                channel: channel.unwrap_or_default(),
                direction: direction.unwrap_or_default(),
                theme,
                borrower_selected_theme: selected,
                subject,
                status: status.unwrap_or_default(),
                status_details: details,
                agent_outcome: outcome,
                started_at: started,
                ended_at: ended,
                scheduled_at_from: from,
                scheduled_at_to: to,
                loan_id,
                loan_ids,
                is_transactional: transactional,
                previous_interaction_id: previous,
                contact: contact.map(|(kind, value)| pb::Contact {
                    kind: kind.to_owned(),
                    value: value.unwrap_or_default(),
                    name: "Ann".into(),
                }),
                created_at: created,
                updated_at: updated,
                deleted_at: deleted,
                // Passed over when read in place.
                created_by: notes,
                company_id: company,
                content: Some(prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("hello".into())),
                }),
                recording: (media == 0).then(|| pb::InteractionMedia {
                    content_type: "audio/wav".into(),
                    ..pb::InteractionMedia::default()
                }),
                ..pb::Interaction::default()
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Read in place, a stored interaction gives exactly what decoding
        /// it whole gave: the same lean form (or none) and the same texts,
        /// whatever its fields, valid or not.
        #[test]
        fn reading_in_place_gives_what_decoding_whole_gives(
            i in interaction(),
            before in 1_500_000_000i64..1_800_000_000,
        ) {
            let let_go = LetGo { before };
            let bytes = prost::Message::encode_to_vec(&Record { op: Some(Op::Interaction(i)) });
            prop_assert_eq!(in_place(&bytes, let_go), whole(&bytes, let_go));
        }
    }

    /// What reading in place does not take is left to the whole decoding:
    /// another operation, a field given twice, bytes cut short.
    #[test]
    fn what_reading_in_place_does_not_take_is_decoded_whole() {
        let i = pb::Interaction {
            id: "IT-1".into(),
            person_id: "BO-1".into(),
            channel: "voice".into(),
            direction: "outbound".into(),
            status: "attempted".into(),
            ..pb::Interaction::default()
        };
        let bytes = prost::Message::encode_to_vec(&Record {
            op: Some(Op::Interaction(i.clone())),
        });
        assert!(fields(&bytes).is_some());
        // Cut short anywhere.
        for n in 1..bytes.len() {
            assert_eq!(fields(&bytes[..n]), None, "cut at {n}");
        }
        // The interaction given twice: protobuf merges the two.
        let twice = [bytes.clone(), bytes.clone()].concat();
        assert_eq!(fields(&twice), None);
        // A field given twice inside it (the id).
        let inner = prost::Message::encode_to_vec(&i);
        let mut doubled = inner.clone();
        doubled.extend_from_slice(&[0x0A, 1, b'X']);
        let mut record = vec![0x0A, u8::try_from(doubled.len()).unwrap()];
        record.extend_from_slice(&doubled);
        assert_eq!(fields(&record), None);
        // A varint past 64 bits (`isTransactional`, field 18).
        let mut overflowing = inner.clone();
        overflowing.extend_from_slice(&[0x90, 0x01]);
        overflowing.extend_from_slice(&[0xFF; 9]);
        overflowing.push(0x02);
        let mut record = vec![0x0A, u8::try_from(overflowing.len()).unwrap()];
        record.extend_from_slice(&overflowing);
        assert!(<Record as prost::Message>::decode(record.as_slice()).is_err());
        assert_eq!(fields(&record), None);
        // Inside a field it reads, a field in another wire type (a
        // `startedAt` whose seconds are given as bytes; a contact's kind
        // as a number), and a key past 32 bits: prost refuses each.
        let wrapped = |extra: &[u8]| {
            let mut inner = inner.clone();
            inner.extend_from_slice(extra);
            let mut record = vec![0x0A, u8::try_from(inner.len()).unwrap()];
            record.extend_from_slice(&inner);
            record
        };
        for extra in [
            &[0x62, 0x03, 0x0A, 0x01, 0x07][..],
            &[0xC2, 0x01, 0x02, 0x08, 0x01][..],
            &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00][..],
        ] {
            let record = wrapped(extra);
            assert!(
                <Record as prost::Message>::decode(record.as_slice()).is_err(),
                "{extra:?}"
            );
            assert_eq!(fields(&record), None, "{extra:?}");
        }
        // Another operation.
        let person = prost::Message::encode_to_vec(&Record {
            op: Some(Op::ReservationClosed("R-1".into())),
        });
        assert_eq!(fields(&person), None);
    }
}
