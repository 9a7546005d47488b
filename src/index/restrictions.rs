//! Restrictions, per person: planned with a new id, stored (added or
//! replaced by an end), and read.

use super::{Index, IndexError, PersonKey, Resolved, free_id};
use crate::restrictions::{MAX_PER_PERSON, Restriction};

impl Index {
    /// A new restriction as [`Index::put_restriction`] would store it,
    /// with a new id (`RS-...`, never used before), and who its person is
    /// (someone it would register, on first mention); without changing the
    /// index. Refused when the person already has [`MAX_PER_PERSON`].
    pub fn plan_restriction(&self, r: Restriction) -> Result<(Resolved, Restriction), IndexError> {
        let who = self.plan_person(&r.person_id)?;
        if let Some(k) = who.key()
            && self.person_restrictions(k).len() >= MAX_PER_PERSON
        {
            return Err(IndexError::TooManyRestrictions(who.id().to_owned()));
        }
        let id = free_id("RS", self.next_restriction, |id| {
            self.restriction_ids.contains_key(id)
        });
        let person_id = who.id().to_owned();
        Ok((who, Restriction { id, person_id, ..r }))
    }

    /// Stores a restriction's full state: a new id is added to its person
    /// (registered on first mention), a known one replaced (an end). The
    /// journal is recovered through here too.
    pub fn put_restriction(&mut self, r: Restriction) -> Result<&Restriction, IndexError> {
        let key = match self.restriction_ids.get(&r.id) {
            Some(k) => *k,
            None => self.register_person(&r.person_id)?,
        };
        let person_id = self.people[key.0 as usize].id.to_string();
        let person = self.people[key.0 as usize].more_mut();
        let at = match person.restrictions.iter().position(|x| x.id == r.id) {
            Some(i) => {
                person.restrictions[i] = Restriction { person_id, ..r };
                i
            }
            None => {
                if person.restrictions.len() >= MAX_PER_PERSON {
                    return Err(IndexError::TooManyRestrictions(person_id));
                }
                self.restriction_ids.insert(r.id.clone(), key);
                let id = r.id.clone();
                person.restrictions.push(Restriction { person_id, ..r });
                let at = person.restrictions.len() - 1;
                self.advance_counter("RS", &id);
                at
            }
        };
        Ok(&self.people[key.0 as usize].more().restrictions[at])
    }

    /// A restriction by id, checked to belong to `person` (our id or
    /// `ext-`) when one is given.
    pub fn restriction(&self, person: Option<&str>, id: &str) -> Result<&Restriction, IndexError> {
        let unknown = || IndexError::UnknownRestriction {
            person: person.unwrap_or("*").to_owned(),
            id: crate::model::echo(id),
        };
        let key = *self.restriction_ids.get(id).ok_or_else(unknown)?;
        if let Some(person) = person
            && self.find_person(person)? != Some(key)
        {
            return Err(unknown());
        }
        self.people[key.0 as usize]
            .more()
            .restrictions
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(unknown)
    }

    /// A person's restrictions, ended ones included, in the order recorded.
    pub fn person_restrictions(&self, key: PersonKey) -> &[Restriction] {
        self.people
            .get(key.0 as usize)
            .map_or(&[], |p| p.more().restrictions.as_slice())
    }
}
