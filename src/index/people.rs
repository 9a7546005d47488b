//! The person registry: a borrower named by our id, by other ids of ours
//! linked to them, and by `ext-<externalId>` is one borrower with one
//! history.
//!
//! Writes are planned first ([`Index::plan_person`], [`Index::plan_link`]):
//! a plan says which names a person will have, without changing anything,
//! so that the guard can journal the change before it applies it; applying
//! is [`Index::restore_person`], the same call recovery makes.

use super::{Index, IndexError, Person, PersonKey, free_id, registry};
use crate::model::{AnyId, MAX_ID_CHARS, ValidationError};

/// Every name of a person, as the journal stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonNames {
    /// Our id.
    pub id: String,
    /// Other ids of ours linked to the person.
    pub aliases: Vec<String>,
    /// Their external ids.
    pub external_ids: Vec<String>,
}

/// Who a write names: someone known, or someone it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A person the index knows, with our id.
    Known(PersonKey, String),
    /// A person the write registers, with every name.
    New(PersonNames),
}

impl Resolved {
    /// Our id of the person.
    pub fn id(&self) -> &str {
        match self {
            Resolved::Known(_, id) => id,
            Resolved::New(names) => &names.id,
        }
    }

    /// The person's key, if the index knows them already.
    pub fn key(&self) -> Option<PersonKey> {
        match self {
            Resolved::Known(k, _) => Some(*k),
            Resolved::New(_) => None,
        }
    }

    /// The names of a person the write registers.
    pub fn new_person(&self) -> Option<&PersonNames> {
        match self {
            Resolved::Known(..) => None,
            Resolved::New(names) => Some(names),
        }
    }
}

impl Index {
    /// Finds a person by our id or `ext-<externalId>`.
    pub fn find_person(&self, any_id: &str) -> Result<Option<PersonKey>, IndexError> {
        Ok(match AnyId::parse("personId", any_id)? {
            AnyId::Ours(id) => self.registry.by_id(&self.people, id),
            AnyId::External(ext) => self.registry.by_external(&self.people, ext),
        })
    }

    /// Our id of a person.
    pub fn person_id(&self, key: PersonKey) -> &str {
        self.people.get(key.0 as usize).map_or("", |p| &*p.id)
    }

    /// Who `any_id` names for a write, without changing the index: someone
    /// known, or the person the write would register. A person first named
    /// by `ext-X` gets a new id of ours (`BO-...`) and the external id `X`.
    pub fn plan_person(&self, any_id: &str) -> Result<Resolved, IndexError> {
        if let Some(k) = self.find_person(any_id)? {
            return Ok(Resolved::Known(k, self.person_id(k).to_owned()));
        }
        Ok(Resolved::New(match AnyId::parse("personId", any_id)? {
            AnyId::Ours(id) => PersonNames {
                id: id.to_owned(),
                ..PersonNames::default()
            },
            AnyId::External(ext) => PersonNames {
                id: free_id("BO", self.next_person, |id| {
                    self.registry.by_id(&self.people, id).is_some()
                }),
                aliases: Vec::new(),
                external_ids: vec![ext.to_owned()],
            },
        }))
    }

    /// Finds a person, registering them on first mention
    /// ([`Index::plan_person`], then [`Index::restore_person`]).
    pub fn register_person(&mut self, any_id: &str) -> Result<PersonKey, IndexError> {
        match self.plan_person(any_id)? {
            Resolved::Known(k, _) => Ok(k),
            Resolved::New(names) => Ok(self.restore(&names)),
        }
    }

    /// Puts a person's names back ([`Index::restore_person`]).
    pub fn restore(&mut self, names: &PersonNames) -> PersonKey {
        self.restore_person(&names.id, &names.aliases, &names.external_ids)
    }

    /// The names a person would have after linking `id` and `external_id`
    /// ([`Index::link_person`]), without changing the index.
    ///
    /// Refused when both names already belong to two different people who
    /// each have records (interactions or debts): joining them would make
    /// one history out of two. A name that has no records yet simply moves.
    pub fn plan_link(&self, id: &str, external_id: &str) -> Result<PersonNames, IndexError> {
        let AnyId::Ours(id) = AnyId::parse("personId", id)? else {
            return Err(ValidationError::InvalidId {
                field: "personId",
                value: id.to_owned(),
            }
            .into());
        };
        if external_id.is_empty() || external_id.chars().count() > MAX_ID_CHARS {
            return Err(ValidationError::Length {
                field: "externalId",
                len: external_id.chars().count(),
                min: 1,
                max: MAX_ID_CHARS,
            }
            .into());
        }
        let names = |k: PersonKey| {
            let (id, aliases, external_ids) = self.person_names(k);
            PersonNames {
                id,
                aliases,
                external_ids,
            }
        };
        let has_records = |k: PersonKey| {
            self.people.get(k.0 as usize).is_some_and(|p| {
                p.interactions > 0 || p.records_on_disk || !p.more().accounts.is_empty()
            })
        };
        let by_id = self.registry.by_id(&self.people, id);
        let by_ext = self.registry.by_external(&self.people, external_id);
        Ok(match (by_id, by_ext) {
            (Some(a), Some(b)) if a == b => names(a),
            (Some(a), Some(b)) => {
                if has_records(a) && has_records(b) {
                    return Err(IndexError::WouldJoin {
                        a: id.to_owned(),
                        b: format!("ext-{external_id}"),
                        a_id: self.person_id(a).to_owned(),
                        b_id: self.person_id(b).to_owned(),
                    });
                }
                // One side is empty: its names move to the other, our id
                // becoming an alias.
                let (keep, empty) = if has_records(a) { (a, b) } else { (b, a) };
                let (mut kept, moved) = (names(keep), names(empty));
                kept.aliases.push(moved.id);
                kept.aliases.extend(moved.aliases);
                kept.external_ids.extend(moved.external_ids);
                kept
            }
            (Some(a), None) => {
                let mut kept = names(a);
                kept.external_ids.push(external_id.to_owned());
                kept
            }
            (None, Some(b)) => {
                // The person was known only by the external id: the given id
                // becomes an alias too.
                let mut kept = names(b);
                kept.aliases.push(id.to_owned());
                kept
            }
            (None, None) => PersonNames {
                id: id.to_owned(),
                aliases: Vec::new(),
                external_ids: vec![external_id.to_owned()],
            },
        })
    }

    /// Links a person's id and external id, so that both name one history
    /// ([`Index::plan_link`], then [`Index::restore_person`]).
    pub fn link_person(&mut self, id: &str, external_id: &str) -> Result<PersonKey, IndexError> {
        let names = self.plan_link(id, external_id)?;
        Ok(self.restore(&names))
    }

    /// Moves every restriction of `from` to `to`: a person's restrictions
    /// follow their names, so that a cease recorded under one name still
    /// binds after the name is linked to another (only ever stricter).
    fn move_restrictions(&mut self, from: PersonKey, to: PersonKey) {
        if from == to {
            return;
        }
        let moved = match self.people[from.0 as usize].more.as_mut() {
            Some(more) => std::mem::take(&mut more.restrictions),
            None => return,
        };
        let to_id = self.people[to.0 as usize].id.clone();
        for mut r in moved {
            self.restriction_ids.insert(r.id.clone(), to);
            r.person_id = to_id.to_string();
            self.people[to.0 as usize].more_mut().restrictions.push(r);
        }
    }

    /// How many people the registry holds.
    pub fn people_len(&self) -> usize {
        self.people.len()
    }

    /// Every name of a person: our id, other ids of ours linked to them,
    /// and their external ids. This is what the journal stores.
    pub fn person_names(&self, key: PersonKey) -> (String, Vec<String>, Vec<String>) {
        self.people
            .get(key.0 as usize)
            .map_or_else(Default::default, |p| {
                (
                    p.id.to_string(),
                    p.more().aliases.clone(),
                    p.external_ids.iter().map(|e| e.to_string()).collect(),
                )
            })
    }

    /// Every person's key, in registry order.
    pub fn person_keys(&self) -> impl Iterator<Item = PersonKey> + '_ {
        (0..self.people.len()).map(|i| PersonKey(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    /// Puts a person back with every name, as the journal stored them.
    /// Names already pointing at someone else move to this person, which is
    /// what a link that emptied another person did.
    pub fn restore_person(
        &mut self,
        id: &str,
        aliases: &[String],
        external_ids: &[String],
    ) -> PersonKey {
        let key = match self.registry.by_own_id(&self.people, id) {
            Some(k) => k,
            None => {
                let key = PersonKey(u32::try_from(self.people.len()).unwrap_or(u32::MAX));
                self.people.push(Person {
                    id: id.into(),
                    ..Person::default()
                });
                key
            }
        };
        // A name this person now holds leaves whoever held it before (a
        // link that emptied another person), so it names one history only.
        for a in std::iter::once(id).chain(aliases.iter().map(String::as_str)) {
            let held = self.registry.by_id(&self.people, a);
            let Some(old) = held.filter(|old| *old != key) else {
                continue;
            };
            let emptied = self.rename_person(old, |p| {
                let emptied = *p.id == *a;
                if emptied {
                    p.id = Box::default();
                }
                if let Some(more) = p.more.as_mut() {
                    more.aliases.retain(|x| x != a);
                }
                emptied
            });
            if emptied {
                self.move_restrictions(old, key);
            }
        }
        for e in external_ids {
            let held = self.registry.by_external(&self.people, e);
            if let Some(old) = held.filter(|old| *old != key) {
                self.rename_person(old, |p| p.external_ids = p.external_ids.without(e));
            }
        }
        self.rename_person(key, |person| {
            if !aliases.is_empty() || person.more.is_some() {
                person.more_mut().aliases = aliases.to_vec();
            }
            person.external_ids = registry::Externals::of(external_ids.iter().map(String::as_str));
        });
        self.advance_counter("BO", id);
        key
    }
}
