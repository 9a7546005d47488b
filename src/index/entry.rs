//! A counting entry: what a Check reads of one interaction, in 40 bytes
//! (the contact point as a hash, loans as one key or a set kept once),
//! made from a full record, and kept in time order per person.

use super::{Index, Interaction, InteractionKey, NameKey};
use crate::model::{
    AgentOutcome, Channel, ContactKind, Direction, Status, StatusDetails, Subject, Theme,
};

/// What counting needs of one interaction, in a few bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happens, in Unix seconds (see [`Interaction::occurs_at`]).
    pub at: i64,
    /// The interaction.
    pub key: InteractionKey,
    /// Its channel.
    pub channel: Channel,
    /// Its direction.
    pub direction: Direction,
    /// Its effective theme; `None` is unknown and matches every filter.
    pub theme: Option<Theme>,
    /// Its status.
    pub status: Status,
    /// Its statusDetails.
    pub details: Option<StatusDetails>,
    /// Its agentOutcome.
    pub outcome: Option<AgentOutcome>,
    /// The kind of contact point it went to.
    pub contact: ContactKind,
    /// The contact point itself, as [`contact_hash`] of its value: what an
    /// opt-out naming numbers or addresses compares, without keeping the
    /// value in memory. `None`: not recorded.
    pub contact_value: Option<ContactHash>,
    /// Its subject, which the confirmation of an opt-out reads.
    pub subject: Option<Subject>,
    /// isTransactional; `None` is unknown.
    pub transactional: Option<bool>,
    /// The interaction its previousInteractionId names, if we know it.
    /// Whether it answers the borrower is read at decision time
    /// ([`BorrowerView::answers_borrower`]), so that a later delete or
    /// change of the earlier interaction shows at once.
    pub previous: Option<InteractionKey>,
    /// The loans it names; empty means it counts for every debt.
    pub loans: Loans,
}

/// A contact point's value (a number or an address), hashed after
/// [`crate::restrictions::normalize_contact`]: 8 bytes in a counting entry
/// instead of the string.
///
/// The key is random (SipHash-1-3 with keys no caller sees), so a value
/// cannot be chosen to collide with another. The keys live as long as the
/// process, and as long as an index written at a clean stop
/// ([`super::Index::write_checkpoint`]) that the next start reads with
/// them. Two different values share a hash with a chance of about 2^-64
/// per comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactHash(pub(super) std::num::NonZeroU64);

/// The [`ContactHash`] of a contact point's value, normalized as a
/// restriction's points are.
pub fn contact_hash(value: &str) -> ContactHash {
    ContactHash(keyed_hash(&crate::restrictions::normalize_contact(value)))
}

/// A 64-bit SipHash-1-3 of `value` under the process's keys
/// ([`hash_keys`]), the same for every caller in it: what memory keeps
/// of a contact point ([`ContactHash`]) or an `externalId` in place of
/// the text. Never 0, so that an `Option` of it takes 8 bytes.
pub(super) fn keyed_hash(value: &str) -> std::num::NonZeroU64 {
    use std::hash::Hasher;
    let [k0, k1] = *KEYS.get_or_init(random_keys);
    let mut h = siphasher::sip::SipHasher13::new_with_keys(k0, k1);
    h.write(value.as_bytes());
    // A terminator, as `str`'s own `Hash` writes one.
    h.write_u8(0xff);
    std::num::NonZeroU64::new(h.finish()).unwrap_or(std::num::NonZeroU64::MIN)
}

/// The keys every [`keyed_hash`] of this process uses: random, chosen
/// once, unless [`adopt_hash_keys`] set them first.
static KEYS: std::sync::OnceLock<[u64; 2]> = std::sync::OnceLock::new();

/// Two random keys: the standard library's per-process random hash keys,
/// each drawn through a hasher of its own.
fn random_keys() -> [u64; 2] {
    use std::hash::BuildHasher;
    let draw = |n: u64| std::collections::hash_map::RandomState::new().hash_one(n);
    [draw(0), draw(1)]
}

/// The keys this process hashes contact points and `externalId`s with
/// (chosen now if no hash was made yet): an index written to disk
/// ([`super::Index::write_checkpoint`]) holds hashes made with them, and
/// is read back only by a process that hashes with the same keys.
pub(super) fn hash_keys() -> [u64; 2] {
    *KEYS.get_or_init(random_keys)
}

/// Makes `keys` this process's hash keys, if no hash was made yet;
/// `true` if they are its keys now (set now, or the same already): an
/// index read back from disk may then be used, its hashes comparable
/// with every one made from now on.
pub(super) fn adopt_hash_keys(keys: [u64; 2]) -> bool {
    *KEYS.get_or_init(|| keys) == keys
}

/// The loans an entry names, in 4 bytes: one loan's key, or the number
/// of a set of none or several that the index keeps once
/// ([`Index::loans`] reads it, [`BorrowerView::loans`] for the engine).
/// Most interactions name one loan, and the sets a borrower's
/// interactions name repeat, so a set is kept once however many entries
/// name it (and kept for the process's life: they are few).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loans(pub(super) NameKey);

/// The bit that marks a [`Loans`] as a set's number rather than a loan.
const LOAN_SET: u32 = 1 << 31;

impl Loans {
    /// Names no loan: counts for every debt.
    pub const NONE: Loans = Loans(NameKey(LOAN_SET));
}

impl Default for Loans {
    fn default() -> Self {
        Loans::NONE
    }
}

/// What a counting entry holds of its record alone, without the index:
/// made by whoever reads the record (a start's reading thread makes it
/// for the records it lets go at once, see [`super::Lean`]), and made
/// into an [`Entry`] by [`Index::entry_of`], which adds what the index
/// knows (the cited interaction's key, the loans' keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    at: i64,
    channel: Channel,
    direction: Direction,
    theme: Option<Theme>,
    status: Status,
    details: Option<StatusDetails>,
    outcome: Option<AgentOutcome>,
    contact: ContactKind,
    contact_value: Option<ContactHash>,
    subject: Option<Subject>,
    transactional: Option<bool>,
}

impl Facts {
    /// The facts of a record: its [`Entry`]'s fields that need nothing
    /// but the record.
    pub fn of(record: &Interaction) -> Facts {
        let value = record.contact.as_ref().and_then(|c| c.value.as_deref());
        Facts::of_with_value(record, value)
    }

    /// [`Facts::of`], the contact's value given apart (`record`'s own is
    /// not read): a start reads it from the stored bytes without copying
    /// it into a record ([`super::Lean::of_parts`]).
    pub(super) fn of_with_value(record: &Interaction, value: Option<&str>) -> Facts {
        Facts {
            at: record.occurs_at().timestamp(),
            channel: record.channel,
            direction: record.direction,
            theme: record.effective_theme(),
            status: record.status,
            details: record.status_details,
            outcome: record.agent_outcome,
            contact: record.contact_kind(),
            contact_value: value.map(contact_hash),
            subject: record.subject,
            transactional: record.is_transactional,
        }
    }

    /// When the interaction happens (Unix seconds).
    pub fn at(&self) -> i64 {
        self.at
    }
}

impl Index {
    /// The counting entry of a record, as interaction `key`.
    pub(super) fn entry_for(&mut self, key: InteractionKey, record: &Interaction) -> Entry {
        self.entry_of(
            key,
            Facts::of(record),
            record.previous_interaction_id.as_deref(),
            &record.loans(),
        )
    }

    /// The counting entry of interaction `key` from its record's
    /// [`Facts`], the id its previousInteractionId gives and the loans it
    /// names (as [`Interaction::loans`] lists them): what
    /// [`Index::entry_for`] makes of a whole record, and a start of one it
    /// reads lean.
    pub(super) fn entry_of(
        &mut self,
        key: InteractionKey,
        facts: Facts,
        previous: Option<&str>,
        loans: &[&str],
    ) -> Entry {
        let previous = previous.and_then(|prev| self.find_interaction(prev).ok().flatten());
        // One loan, the most common, needs no list of keys.
        let loans = match loans {
            [one] => {
                let key = self.names.intern(one);
                self.loans_of(&[key])
            }
            _ => {
                let keys: Vec<NameKey> = loans.iter().map(|l| self.names.intern(l)).collect();
                self.loans_of(&keys)
            }
        };
        let Facts {
            at,
            channel,
            direction,
            theme,
            status,
            details,
            outcome,
            contact,
            contact_value,
            subject,
            transactional,
        } = facts;
        Entry {
            at,
            key,
            channel,
            direction,
            theme,
            status,
            details,
            outcome,
            contact,
            contact_value,
            subject,
            transactional,
            previous,
            loans,
        }
    }

    /// The [`Loans`] of these loan keys: the one key, or the number of
    /// the set (kept once).
    fn loans_of(&mut self, keys: &[NameKey]) -> Loans {
        match keys {
            [] => return Loans::NONE,
            [one] if one.0 < LOAN_SET => return Loans(*one),
            _ => {}
        }
        use std::hash::BuildHasher;
        let (sets, numbers) = (&self.loan_sets, &mut self.loan_set_numbers);
        let state = numbers.state.clone();
        let set_of = |n: &u32| sets.get((*n as usize).wrapping_sub(1)).map(|s| &**s);
        let hash = state.hash_one(keys);
        if let Some(n) = numbers.table.find(hash, |n| set_of(n) == Some(keys)) {
            return Loans(NameKey(LOAN_SET | n));
        }
        // INVARIANT: fewer than 2^31 sets fit in memory; saturating keeps
        // it panic-free regardless (a set past it reads as the last).
        let n = u32::try_from(sets.len() + 1)
            .unwrap_or(u32::MAX)
            .min(LOAN_SET - 1);
        numbers
            .table
            .insert_unique(hash, n, |n| set_of(n).map_or(0, |s| state.hash_one(s)));
        self.loan_sets.push(keys.into());
        Loans(NameKey(LOAN_SET | n))
    }

    /// The loans a [`Loans`] names; empty: none.
    pub fn loans<'a>(&'a self, loans: &'a Loans) -> &'a [NameKey] {
        let raw = loans.0.0;
        if raw < LOAN_SET {
            return std::slice::from_ref(&loans.0);
        }
        match (raw & !LOAN_SET) as usize {
            0 => &[],
            n => self.loan_sets.get(n - 1).map_or(&[], |keys| keys),
        }
    }
}

/// Inserts an entry at its place in time order.
pub(super) fn insert_sorted(entries: &mut Vec<Entry>, entry: Entry) {
    // Grow by a quarter, not double: a borrower's list is long-lived and
    // mostly short, and doubling left up to half of it unused.
    if entries.len() == entries.capacity() {
        entries.reserve_exact(entries.len() / 4 + 1);
    }
    let pos = entries.partition_point(|e| (e.at, e.key) < (entry.at, entry.key));
    entries.insert(pos, entry);
}

/// Removes the entry of `key` at `at`, if there is one.
pub(super) fn remove_entry(entries: &mut Vec<Entry>, at: i64, key: InteractionKey) {
    let pos = entries.partition_point(|e| (e.at, e.key) < (at, key));
    if entries.get(pos).is_some_and(|e| e.key == key) {
        entries.remove(pos);
    }
}

#[cfg(test)]
mod size {
    use super::*;

    /// A counting entry stays small: 40 bytes, loans and the cited
    /// interaction in 4 bytes each, and a set of loans kept once.
    #[test]
    fn entry_is_small() {
        assert_eq!(std::mem::size_of::<Loans>(), 4);
        assert_eq!(std::mem::size_of::<Option<InteractionKey>>(), 4);
        assert_eq!(std::mem::size_of::<Entry>(), 40);
        let mut index = Index::default();
        let one = index.loans_of(&[NameKey(7)]);
        assert_eq!(one, Loans(NameKey(7)));
        assert_eq!(index.loans(&one), &[NameKey(7)]);
        let none = index.loans_of(&[]);
        assert!(index.loans(&none).is_empty());
        assert!(index.loans(&Loans::default()).is_empty());
        let two = index.loans_of(&[NameKey(1), NameKey(2)]);
        assert_eq!(index.loans(&two), &[NameKey(1), NameKey(2)]);
        assert_eq!(index.loans_of(&[NameKey(1), NameKey(2)]), two, "kept once");
        assert_eq!(index.loan_sets.len(), 1);
        // Many sets, the table grown past its first room: each is found
        // again under its own number, and read back as it was.
        let many: Vec<Loans> = (0..500u32)
            .map(|i| index.loans_of(&[NameKey(i), NameKey(i + 1), NameKey(7)]))
            .collect();
        assert_eq!(index.loan_sets.len(), 501);
        for (i, loans) in (0..500u32).zip(&many) {
            let again = index.loans_of(&[NameKey(i), NameKey(i + 1), NameKey(7)]);
            assert_eq!(again, *loans);
            assert_eq!(
                index.loans(loans),
                &[NameKey(i), NameKey(i + 1), NameKey(7)]
            );
        }
        assert_eq!(index.loan_sets.len(), 501);
        let far = index.loans_of(&[NameKey(LOAN_SET + 3)]);
        assert_eq!(
            index.loans(&far),
            &[NameKey(LOAN_SET + 3)],
            "a key past the mark"
        );
    }
}
