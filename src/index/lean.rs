//! A start's lean path. Most interactions a start reads from the store
//! are in the horizon but older than a day: the walk while serving keeps
//! only their slot and counting entry ([`Index::let_go_in`]), so a start
//! lets their full records go as it reads them. Made whole first, each
//! costs the index a record's allocation, its conversion and its free for
//! nothing it keeps.
//!
//! [`Lean::of`] is what the thread that reads the store makes of such a
//! record instead: the entry's [`Facts`] and the `externalId`'s hash, and
//! only when the walk would let the record go at once. [`Index::restore_lean`]
//! then makes from it the very slot, names and entry that
//! [`Index::restore_interaction`] and [`Index::let_go_newest`] make from
//! the whole record: the same functions make them.

use super::entry::Facts;
use super::{ExtHash, Index, IndexError, Interaction, LetGo};

/// What the index keeps of an interaction whose full record a start lets
/// go as it reads it (see the module's documentation): made on the thread
/// that reads the record, with no allocation, and restored by
/// [`Index::restore_lean`] with the record's texts ([`LeanNames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lean {
    facts: Facts,
    ext: Option<ExtHash>,
}

/// The texts of the record a [`Lean`] was made from, borrowed from where
/// the reading thread keeps them.
#[derive(Debug, Clone, Copy)]
pub struct LeanNames<'a> {
    /// Its `personId`.
    pub person_id: &'a str,
    /// Its `id`.
    pub id: &'a str,
    /// Its `previousInteractionId`.
    pub previous: Option<&'a str>,
    /// Its loans, as [`Interaction::loans`] lists them.
    pub loans: &'a [&'a str],
}

impl Lean {
    /// The lean form of `record`, when a start lets its full record go as
    /// it reads it: the walk's rule ([`super::disk::may_let_go`]) for a
    /// record the store holds. `None`: it stays whole, and a start
    /// restores it whole ([`Index::restore_interaction`]).
    pub fn of(record: &Interaction, let_go: LetGo) -> Option<Lean> {
        let value = record.contact.as_ref().and_then(|c| c.value.as_deref());
        Lean::of_parts(record, value, record.external_id.as_deref(), let_go)
    }

    /// [`Lean::of`] of a record whose contact value and `externalId` are
    /// given apart (the record's own are not read): what a start makes of
    /// a stored record read in place, its texts never copied into the
    /// record (`guard::lean_read`).
    pub fn of_parts(
        record: &Interaction,
        contact_value: Option<&str>,
        external_id: Option<&str>,
        let_go: LetGo,
    ) -> Option<Lean> {
        let facts = Facts::of_with_value(record, contact_value);
        super::disk::may_let_go(record, facts.at(), let_go).then(|| Lean {
            facts,
            ext: external_id.map(ExtHash::of),
        })
    }
}

impl Index {
    /// Restores an interaction a start read from the store and lets go at
    /// once: what [`Index::restore_interaction`] of its whole record and
    /// then [`Index::let_go_newest`] leave, without the record.
    ///
    /// For a start only: refused (and nothing changed) when the id is
    /// already in memory, or the changes applied travel in a journal frame
    /// (see [`Index::set_frame`]): the whole path would then keep the
    /// record, which this one does not have.
    pub fn restore_lean(&mut self, lean: Lean, names: LeanNames<'_>) -> Result<(), IndexError> {
        let refused = |why: &'static str| IndexError::LeanRefused {
            id: names.id.to_owned(),
            why,
        };
        if self.frame != 0 {
            return Err(refused("changes are being applied in a journal frame"));
        }
        if self.key_of_id(names.id).is_some() {
            return Err(refused("an interaction in memory has its id"));
        }
        let p = match self.registry.by_id(&self.people, names.person_id) {
            Some(p) => p,
            None => self.register_person(names.person_id)?,
        };
        let key = self.new_slot(p, names.id, lean.ext, lean.facts.at());
        // A record let go is never a deleted one: it has its entry.
        let entry = self.entry_of(key, lean.facts, names.previous, names.loans);
        self.put_entry(p, entry);
        self.name_id(key);
        // What letting its record go counts.
        self.let_go += 1;
        self.epoch += 1;
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::fmt::Write as _;

    use super::super::InteractionKey;
    use super::super::slots::{ext_name, id_name};
    use super::*;
    use crate::model::{ContactInput, InteractionInput};
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The loan names and sets, and the sizes of the three tables that
    /// find things by name: a part of [`canonical`] that names no slot.
    pub(in crate::index) fn names_and_tables(index: &Index) -> String {
        format!(
            "{:?} {:?}\ntables {} {} {}\n",
            index.names.names(),
            index.loan_sets,
            index.ids.len(),
            index.external_ids.len(),
            index.names.keys.len()
        )
    }

    /// Everything the index holds, written in an order that does not
    /// depend on its hash tables' seeds: two indexes with the same
    /// canonical form hold the same state.
    pub(in crate::index) fn canonical(index: &Index) -> String {
        fn sorted<T: std::fmt::Debug>(items: impl Iterator<Item = T>) -> Vec<String> {
            let mut v: Vec<String> = items.map(|i| format!("{i:?}")).collect();
            v.sort();
            v
        }
        let mut out = String::new();
        let records = &index.records;
        for (i, slot) in records.iter().enumerate() {
            let key = InteractionKey::of_slot(i);
            let given = &index.given_ids;
            let by_id = slot
                .id
                .name(key, given)
                .map(|n| index.ids.get(n, |k| id_name(records, given, k)));
            let by_ext =
                ext_name(records, key).map(|n| index.external_ids.get(n, |k| ext_name(records, k)));
            writeln!(out, "{slot:?} by id {by_id:?} by ext {by_ext:?} is {key:?}").unwrap();
        }
        for p in &index.people {
            let more = p.more();
            writeln!(
                out,
                "{:?} {:?} {:?} {:?} {} {} {:?} {:?} {:?} {:?}",
                p.id,
                p.external_ids,
                p.entries,
                p.records,
                p.interactions,
                p.records_on_disk,
                more.aliases,
                sorted(more.accounts_of_loans.iter()),
                sorted(more.accounts.iter()),
                more.restrictions
            )
            .unwrap();
        }
        writeln!(out, "{:?}", index.registry.dump(&index.people)).unwrap();
        writeln!(out, "{:?}", sorted(index.restriction_ids.iter())).unwrap();
        writeln!(out, "{:?}", sorted(index.loan_set_numbers.table.iter())).unwrap();
        writeln!(out, "{:?}", sorted(index.media_files.iter())).unwrap();
        writeln!(out, "{:?}", sorted(index.whole.iter())).unwrap();
        writeln!(out, "{:?}", sorted(index.given_ids.iter())).unwrap();
        writeln!(out, "{:?}", sorted(index.pending.iter())).unwrap();
        out.push_str(&names_and_tables(index));
        writeln!(
            out,
            "{:?} {} {} {} {} {} {} {} {} {} {} {}",
            index.config,
            index.next_person,
            index.next_interaction,
            index.next_restriction,
            index.on_disk,
            index.vacated,
            index.let_go,
            index.epoch,
            index.held_from,
            index.max_on_disk_generated,
            index.next_seq,
            index.frame
        )
        .unwrap();
        out
    }

    fn input(started: &str) -> InteractionInput {
        InteractionInput {
            channel: Some("voice".into()),
            direction: Some("outbound".into()),
            status: Some("attempted".into()),
            started_at: Some(started.into()),
            ..InteractionInput::default()
        }
    }

    /// A start's lean restore leaves exactly the state the whole path
    /// leaves (the record restored, then let go): slots, names, entries,
    /// people, loans and every count, over records that cite each other
    /// by id and by `externalId`, name one loan, several or none, chose
    /// their own ids, and records the walk keeps whole (deleted, in
    /// progress, recent) restored whole in between.
    #[test]
    fn a_lean_restore_leaves_what_the_whole_path_leaves() {
        let now = at("2020-05-01T00:00:00Z");
        let mut live = Index::default();
        let person = "BO-0000-00000042";
        let other = "ext-crm-p";
        let mut made = Vec::new();
        let mut make = |who: &str, input: InteractionInput| {
            let id = live.create(who, &input, now).unwrap().id.clone();
            made.push(id.clone());
            id
        };
        let first = make(
            person,
            InteractionInput {
                external_id: Some("crm-1".into()),
                loan_id: Some("L1".into()),
                contact: Some(ContactInput {
                    kind: Some("mobile".into()),
                    value: Some("+1 (206) 555-0100".into()),
                    name: None,
                }),
                ..input("2020-04-01T14:00:00Z")
            },
        );
        make(
            person,
            InteractionInput {
                channel: Some("text".into()),
                status: Some("succeeded".into()),
                loan_ids: Some(vec!["L1".into(), "L2".into()]),
                previous_interaction_id: Some(first.clone()),
                ..input("2020-04-01T15:00:00Z")
            },
        );
        make(
            other,
            InteractionInput {
                id: Some("IT-CHOSEN-1".into()),
                external_id: Some("crm-3".into()),
                channel: Some("email".into()),
                direction: Some("inbound".into()),
                status: Some("succeeded".into()),
                ..input("2020-04-02T09:00:00Z")
            },
        );
        make(
            other,
            InteractionInput {
                channel: Some("email".into()),
                status: Some("succeeded".into()),
                previous_interaction_id: Some("ext-crm-3".into()),
                loan_ids: Some(vec!["L2".into(), "L1".into()]),
                subject: Some("loanOverdueFirstNotice".into()),
                ..input("2020-04-02T10:00:00Z")
            },
        );
        make(
            person,
            InteractionInput {
                status: Some("scheduled".into()),
                scheduled_at_from: Some("2020-04-03T08:00:00Z".into()),
                scheduled_at_to: Some("2020-04-03T09:00:00Z".into()),
                ..input("2020-04-03T07:00:00Z")
            },
        );
        make(
            person,
            InteractionInput {
                status: Some("inProgress".into()),
                ..input("2020-04-03T10:00:00Z")
            },
        );
        make(
            person,
            InteractionInput {
                is_external: Some(true),
                ..input("2020-04-03T11:00:00Z")
            },
        );
        make(person, input("2020-04-20T11:00:00Z"));
        // One citing its own `externalId`: it cites itself.
        make(
            other,
            InteractionInput {
                external_id: Some("crm-9".into()),
                previous_interaction_id: Some("ext-crm-9".into()),
                ..input("2020-04-04T12:00:00Z")
            },
        );
        make(
            person,
            InteractionInput {
                previous_interaction_id: Some("IT-0000-0000FFFF".into()),
                ..input("2020-04-04T11:00:00Z")
            },
        );
        let deleted = made[6].clone();
        live.delete(Some(person), &deleted, now).unwrap();
        let records: Vec<Interaction> = live.interactions().cloned().collect();
        assert_eq!(records.len(), 10);
        let let_go = LetGo {
            before: at("2020-04-10T00:00:00Z").timestamp(),
        };
        // The one in progress, changed again once every record is in.
        let mut ended = records[5].clone();
        ended.status = crate::model::Status::Succeeded;
        // In the order a start reads them, and in another; the lean side
        // with people's lists given as they come, and staged to the end
        // (as a start does).
        let orders = [
            (0..10).collect::<Vec<_>>(),
            vec![8, 3, 9, 2, 7, 1, 0, 6, 5, 4],
        ];
        for (order, staged) in orders.iter().flat_map(|o| [(o, false), (o, true)]) {
            let mut whole = Index::default();
            let mut lean = Index::default();
            if staged {
                lean.begin_start(10);
            }
            let mut leans = 0;
            for (seq, i) in order.iter().enumerate() {
                let r = records[*i].clone();
                for index in [&mut whole, &mut lean] {
                    index.set_next_seq(seq as u64 + 1);
                }
                whole.restore_interaction(r.clone()).unwrap();
                whole.let_go_newest(let_go);
                match Lean::of(&r, let_go) {
                    Some(l) => {
                        leans += 1;
                        let loans = r.loans();
                        lean.restore_lean(
                            l,
                            LeanNames {
                                person_id: &r.person_id,
                                id: &r.id,
                                previous: r.previous_interaction_id.as_deref(),
                                loans: &loans,
                            },
                        )
                        .unwrap();
                    }
                    None => {
                        lean.restore_interaction(r).unwrap();
                        lean.let_go_newest(let_go);
                    }
                }
            }
            // A record replaced while people's lists are staged: they are
            // given first.
            whole.restore_interaction(ended.clone()).unwrap();
            lean.restore_interaction(ended.clone()).unwrap();
            lean.finish_start();
            // The deleted, the one in progress and the recent one stay whole.
            assert_eq!(leans, 7, "{order:?}");
            assert_eq!(whole.let_go_count(), 7);
            // The records held, unordered, are those the slots hold.
            for index in [&whole, &lean] {
                let ids = |it: &mut dyn Iterator<Item = &Interaction>| {
                    let mut ids: Vec<String> = it.map(|r| r.id.clone()).collect();
                    ids.sort();
                    ids
                };
                let held = ids(&mut index.held_records());
                assert_eq!(held.len(), 3);
                assert_eq!(held, ids(&mut index.interactions()));
            }
            assert_eq!(canonical(&whole), canonical(&lean), "{order:?} {staged}");
            // And a second restore of one is refused, changing nothing.
            let r = &records[0];
            let before = canonical(&lean);
            let refused = restore_bare(&mut lean, r, let_go);
            assert!(
                matches!(refused, Err(IndexError::LeanRefused { .. })),
                "{refused:?}"
            );
            assert_eq!(canonical(&lean), before);
        }
    }

    /// Restores `r` lean, named with no previous interaction and no loans.
    fn restore_bare(index: &mut Index, r: &Interaction, let_go: LetGo) -> Result<(), IndexError> {
        index.restore_lean(
            Lean::of(r, let_go).unwrap(),
            LeanNames {
                person_id: &r.person_id,
                id: &r.id,
                previous: None,
                loans: &[],
            },
        )
    }

    /// While a start stages people's lists, an id it already restored is
    /// refused, and so is one memory held before the start began (an id
    /// of the generated shape ahead of the id counter).
    #[test]
    fn a_start_refuses_an_id_memory_holds_while_it_stages() {
        let now = at("2020-05-01T00:00:00Z");
        let mut live = Index::default();
        let person = "BO-0000-00000042";
        let made = live
            .create(person, &input("2020-04-01T14:00:00Z"), now)
            .unwrap()
            .clone();
        let let_go = LetGo {
            before: at("2020-04-10T00:00:00Z").timestamp(),
        };
        let restore = |index: &mut Index, r: &Interaction| restore_bare(index, r, let_go);
        let refused = |r: Result<(), IndexError>| matches!(r, Err(IndexError::LeanRefused { .. }));
        // From empty: the second restore of one id is refused.
        let mut index = Index::default();
        index.begin_start(1000);
        index.set_next_seq(1);
        restore(&mut index, &made).unwrap();
        assert!(refused(restore(&mut index, &made)));
        index.finish_start();
        // Not from empty: an id of the generated shape ahead of the
        // counter (so never noted by this start) held before it began.
        let mut ahead = made.clone();
        ahead.id = "IT-0000-00000100".into();
        let mut index = Index::default();
        index.set_next_seq(1);
        index.restore_interaction(ahead.clone()).unwrap();
        index.begin_start(1000);
        index.set_next_seq(2);
        assert!(refused(restore(&mut index, &ahead)));
        index.finish_start();
    }
}
