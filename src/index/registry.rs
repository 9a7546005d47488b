//! The tables that find a person by name: by our id, by another id of
//! ours linked to them (an alias), and by an external id.
//!
//! Each name's text is held once, in the person that has it: the tables
//! hold only keys ([`Names`], as the slots' ids are found), where they
//! held a second copy of every string as a map's key. At a million
//! borrowers, each with an id and an external id, the copies and their
//! maps' buckets were about 180 MB, 18 bytes an interaction at ten
//! interactions a borrower.
//!
//! Aliases are rare (a link that joined two names), so they keep a map of
//! their own. A person's names change only through
//! [`Index::rename_person`], which takes them all out of the tables and
//! files them again, so that no table ever finds a name its person no
//! longer has.

use super::slots::{Name, Names};
use super::{HashMap, Index, Person, PersonKey};

/// A person's external ids: most people have none or one, kept without
/// the list's own allocation (32 bytes a person, 32 MB at a million).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Externals {
    /// None.
    #[default]
    None,
    /// One.
    One(Box<str>),
    /// Two or more (a link added some).
    Many(Box<[Box<str>]>),
}

impl Externals {
    /// The external ids `ids`, in their order.
    pub(super) fn of<'a>(ids: impl IntoIterator<Item = &'a str>) -> Externals {
        let mut all: Vec<Box<str>> = ids.into_iter().map(Box::from).collect();
        match all.len() {
            0 => Externals::None,
            1 => Externals::One(all.swap_remove(0)),
            _ => Externals::Many(all.into_boxed_slice()),
        }
    }

    /// Every one, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Box<str>]) = match self {
            Externals::None => (None, &[]),
            Externals::One(x) => (Some(x), &[]),
            Externals::Many(all) => (None, all),
        };
        one.into_iter().chain(many.iter().map(|x| &**x))
    }

    /// The `n`th.
    pub(super) fn get(&self, n: usize) -> Option<&str> {
        match self {
            Externals::None => None,
            Externals::One(x) => (n == 0).then_some(&**x),
            Externals::Many(all) => all.get(n).map(|x| &**x),
        }
    }

    /// How many.
    pub(super) fn len(&self) -> usize {
        match self {
            Externals::None => 0,
            Externals::One(_) => 1,
            Externals::Many(all) => all.len(),
        }
    }

    /// All but `ext`.
    pub(super) fn without(&self, ext: &str) -> Externals {
        Externals::of(self.iter().filter(|x| *x != ext))
    }
}

/// A person's `n`th external id, as the external ids' table keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ExtOf {
    pub(super) person: PersonKey,
    pub(super) n: u32,
}

/// The tables of people's names (see the module's documentation).
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// Each person by its own id (empty ids are not filed: a person
    /// emptied by a link).
    pub(super) ids: Names<PersonKey>,
    /// Each alias's person.
    pub(super) aliases: HashMap<Box<str>, PersonKey>,
    /// Each person by each of its external ids.
    pub(super) external: Names<ExtOf>,
}

/// The name `k`'s own id is filed under.
pub(super) fn own_id(people: &[Person], k: PersonKey) -> Option<Name<'_>> {
    people
        .get(k.0 as usize)
        .filter(|p| !p.id.is_empty())
        .map(|p| Name::Given(&p.id))
}

/// The name an external id's entry is filed under.
pub(super) fn external(people: &[Person], e: ExtOf) -> Option<Name<'_>> {
    people
        .get(e.person.0 as usize)
        .and_then(|p| p.external_ids.get(e.n as usize))
        .map(Name::Given)
}

impl Registry {
    /// Room for about `people` more people.
    pub(super) fn reserve(&mut self, people: &[Person], more: usize) {
        self.ids.reserve(more, |k| own_id(people, k));
        self.external.reserve(more, |e| external(people, e));
    }

    /// The person whose own id is `id`.
    pub(super) fn by_own_id(&self, people: &[Person], id: &str) -> Option<PersonKey> {
        self.ids.get(Name::Given(id), |k| own_id(people, k))
    }

    /// The person `id` names: its own id or an alias.
    pub(super) fn by_id(&self, people: &[Person], id: &str) -> Option<PersonKey> {
        self.by_own_id(people, id)
            .or_else(|| self.aliases.get(id).copied())
    }

    /// The person who has the external id `ext`.
    pub(super) fn by_external(&self, people: &[Person], ext: &str) -> Option<PersonKey> {
        self.external
            .get(Name::Given(ext), |e| external(people, e))
            .map(|e| e.person)
    }

    /// Every id of ours that names someone (own ids and aliases).
    pub(super) fn every_id<'a>(&'a self, people: &'a [Person]) -> impl Iterator<Item = &'a str> {
        people
            .iter()
            .map(|p| &*p.id)
            .filter(|id| !id.is_empty())
            .chain(self.aliases.keys().map(|a| &**a))
    }

    /// Every (name, person) pair of the tables, sorted: what a test
    /// compares two registries by.
    #[cfg(test)]
    pub(super) fn dump(&self, people: &[Person]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, p) in people.iter().enumerate() {
            let k = PersonKey(u32::try_from(i).unwrap_or(u32::MAX));
            if let Some(found) = own_id(people, k).and_then(|_| self.by_own_id(people, &p.id)) {
                out.push(format!("id {} {found:?}", p.id));
            }
            for x in p.external_ids.iter() {
                out.push(format!("ext {x} {:?}", self.by_external(people, x)));
            }
        }
        for (a, k) in &self.aliases {
            out.push(format!("alias {a} {k:?}"));
        }
        out.sort();
        out
    }
}

/// The table entries of person `p`'s (key `k`) external ids.
fn externals_of(k: PersonKey, p: &Person) -> impl Iterator<Item = ExtOf> {
    (0..p.external_ids.len()).map(move |n| ExtOf {
        person: k,
        n: u32::try_from(n).unwrap_or(u32::MAX),
    })
}

impl Index {
    /// Changes person `k`'s names with `change`, taking every name the
    /// person had out of the tables first and filing every name it has
    /// after: no table then finds a name the person no longer has.
    pub(super) fn rename_person<R>(
        &mut self,
        k: PersonKey,
        change: impl FnOnce(&mut Person) -> R,
    ) -> R {
        self.unfile_person(k);
        let out = match self.people.get_mut(k.0 as usize) {
            Some(p) => change(p),
            None => change(&mut Person::default()),
        };
        self.file_person(k);
        out
    }

    /// Files every name person `k` has in the tables.
    fn file_person(&mut self, k: PersonKey) {
        let (people, reg) = (&self.people, &mut self.registry);
        let Some(p) = people.get(k.0 as usize) else {
            return;
        };
        if let Some(name) = own_id(people, k) {
            reg.ids.insert(name, k, |k| own_id(people, k));
        }
        for a in &p.more().aliases {
            reg.aliases.insert(a.as_str().into(), k);
        }
        for e in externals_of(k, p) {
            if let Some(name) = external(people, e) {
                reg.external.insert(name, e, |e| external(people, e));
            }
        }
    }

    /// Takes every name person `k` has out of the tables.
    fn unfile_person(&mut self, k: PersonKey) {
        let (people, reg) = (&self.people, &mut self.registry);
        let Some(p) = people.get(k.0 as usize) else {
            return;
        };
        if let Some(name) = own_id(people, k) {
            reg.ids.remove(name, k);
        }
        for a in &p.more().aliases {
            if reg.aliases.get(a.as_str()) == Some(&k) {
                reg.aliases.remove(a.as_str());
            }
        }
        for e in externals_of(k, p) {
            if let Some(name) = external(people, e) {
                reg.external.remove(name, e);
            }
        }
    }
}
