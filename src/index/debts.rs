//! The debt registry: which loans form one debt (an account), per
//! person. By default each loan is its own debt (12 CFR 1006.14(b)(4)).
//!
//! A declaration is planned first ([`Index::plan_debt`]: every check, no
//! change), so that the guard journals it before applying it; applying is
//! [`Index::declare_debt`], which recovery calls too.

use super::{Index, IndexError, NameKey, PersonKey, Resolved};
use crate::model::{MAX_ID_CHARS, MAX_LOANS};

impl Index {
    /// Checks a declaration that `loans` form the account `debt_id` of
    /// `person` ([`Index::declare_debt`]) without changing the index, and
    /// says who the person is (someone it would register, on first
    /// mention).
    pub fn plan_debt(
        &self,
        person: &str,
        debt_id: &str,
        loans: &[String],
    ) -> Result<Resolved, IndexError> {
        if debt_id.is_empty() || debt_id.chars().count() > MAX_ID_CHARS {
            return Err(IndexError::BadDebt {
                debt: crate::model::echo(debt_id),
                reason: format!("the id must have 1 to {MAX_ID_CHARS} characters"),
            });
        }
        if loans.len() > MAX_LOANS {
            return Err(IndexError::BadDebt {
                debt: debt_id.to_owned(),
                reason: format!("{} loans given; allowed: at most {MAX_LOANS}", loans.len()),
            });
        }
        if let Some(bad) = loans
            .iter()
            .find(|l| l.is_empty() || l.chars().count() > MAX_ID_CHARS)
        {
            return Err(IndexError::BadDebt {
                debt: debt_id.to_owned(),
                reason: format!(
                    "loan id `{}` must have 1 to {MAX_ID_CHARS} characters",
                    crate::model::echo(bad)
                ),
            });
        }
        let who = self.plan_person(person)?;
        let account = self.names.get(debt_id);
        if let Some(person) = who.key().and_then(|p| self.people.get(p.0 as usize)) {
            for l in loans.iter().filter_map(|l| self.names.get(l)) {
                if let Some(other) = person.more().accounts_of_loans.get(&l)
                    && Some(*other) != account
                {
                    return Err(IndexError::LoanInTwoDebts {
                        loan: self.names.name(l).to_owned(),
                        debt: self.names.name(*other).to_owned(),
                    });
                }
            }
        }
        Ok(who)
    }

    /// Declares that `loans` form one debt, the account `debt_id`, for this
    /// person (12 CFR 1006.14(b)(4): student loans serviced under one
    /// account number are one debt; D.C. counts per account). A second
    /// declaration of the same account replaces its list of loans. Checked
    /// as [`Index::plan_debt`] checks it.
    pub fn declare_debt(
        &mut self,
        person: &str,
        debt_id: &str,
        loans: &[String],
    ) -> Result<(), IndexError> {
        if let Resolved::New(names) = self.plan_debt(person, debt_id, loans)? {
            self.restore(&names);
        }
        let p = self.register_person(person)?;
        let account = self.names.intern(debt_id);
        let loan_keys: Vec<NameKey> = loans.iter().map(|l| self.names.intern(l)).collect();
        let person = self.people[p.0 as usize].more_mut();
        if let Some(old) = person.accounts.insert(account, loan_keys.clone()) {
            for l in old {
                person.accounts_of_loans.remove(&l);
            }
        }
        for l in loan_keys {
            person.accounts_of_loans.insert(l, account);
        }
        Ok(())
    }

    /// A person's declared accounts with their loans, sorted by account id.
    pub fn person_debts(&self, key: PersonKey) -> Vec<(String, Vec<String>)> {
        let Some(p) = self.people.get(key.0 as usize) else {
            return Vec::new();
        };
        let mut debts: Vec<(String, Vec<String>)> = p
            .more()
            .accounts
            .iter()
            .map(|(a, loans)| {
                (
                    self.names.name(*a).to_owned(),
                    loans
                        .iter()
                        .map(|l| self.names.name(*l).to_owned())
                        .collect(),
                )
            })
            .collect();
        debts.sort();
        debts
    }
}
