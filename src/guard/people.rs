//! People and their debts, and the open reservations: declare an account,
//! link a person's names, list and cancel reservations.

use chrono::{DateTime, Utc};

use super::access::visible;
use super::{Guard, GuardError};
use crate::ledger::{Change, Reservation};
use crate::model::{Interaction, InteractionInput, Status};
use crate::request::Caller;

impl Guard {
    /// Declares that loans form one debt; `now` is when.
    pub async fn declare_debt(
        &self,
        person: &str,
        debt_id: &str,
        loans: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), GuardError> {
        if person.is_empty() {
            return Err(GuardError::field("personId", "`personId` is required"));
        }
        let () = self
            .write_through(|ledger| {
                let who = ledger.index.plan_debt(person, debt_id, loans)?;
                let mut changes = super::registration(&who, now);
                changes.push(Change::Debt {
                    person_id: who.id().to_owned(),
                    debt_id: debt_id.to_owned(),
                    loan_ids: loans.to_vec(),
                    at: Some(now),
                });
                Ok((changes, ()))
            })
            .await?;
        Ok(())
    }

    /// Links a person's id and external id; returns our id of the person.
    /// `now` is when.
    pub async fn link_person(
        &self,
        id: &str,
        external_id: &str,
        now: DateTime<Utc>,
    ) -> Result<String, GuardError> {
        // A person whose interactions are all on disk only has records: a
        // link must not join it to another person's history.
        if let Some(store) = &self.store {
            let ext = format!("ext-{external_id}");
            for name in [id, ext.as_str()] {
                let (names, before) = {
                    let ledger = self.read()?;
                    if ledger.index.on_disk() == 0 {
                        break;
                    }
                    (ledger.index.person_names_of(name), ledger.index.held_from())
                };
                if !names.is_empty()
                    && store
                        .any_of_people(&names, before)
                        .map_err(|e| GuardError::Internal(e.to_string()))?
                {
                    self.write()?.index.note_records_on_disk(name);
                }
            }
        }
        let person_id = self
            .write_through(|ledger| {
                let names = ledger.index.plan_link(id, external_id)?;
                let person_id = names.id.clone();
                Ok((
                    vec![Change::Person {
                        names,
                        at: Some(now),
                    }],
                    person_id,
                ))
            })
            .await?;
        Ok(person_id)
    }

    /// The open reservations the caller may see (as [`Guard::get`] would
    /// find their interactions), oldest first, optionally of one person.
    pub fn reservations(
        &self,
        person: Option<&str>,
        caller: &Caller,
    ) -> Result<Vec<Reservation>, GuardError> {
        let ledger = self.read()?;
        let who = match person {
            Some(p) => Some(
                ledger
                    .index
                    .find_person(p)?
                    .map(|k| ledger.index.person_id(k).to_owned())
                    .ok_or_else(|| {
                        GuardError::NotFound(format!("no person `{}`", crate::model::echo(p)))
                    })?,
            ),
            None => None,
        };
        let mut list: Vec<Reservation> = ledger
            .reservations()
            .values()
            .filter(|r| who.as_ref().is_none_or(|w| *w == r.person_id))
            // Only those the caller may see: another company's are not
            // listed, as its interactions are not.
            // A reservation's interaction stays in memory while it is open
            // (`Store::load`).
            .filter(|r| {
                ledger
                    .index
                    .get(None, &r.interaction_id)
                    .is_ok_and(|i| visible(i, caller).is_ok())
            })
            .cloned()
            .collect();
        list.sort_by(|a, b| {
            (a.reserved_at, &a.interaction_id).cmp(&(b.reserved_at, &b.interaction_id))
        });
        Ok(list)
    }

    /// Cancels an open reservation: its status becomes `canceled`, which
    /// releases the slot.
    pub async fn cancel_reservation(
        &self,
        interaction: &str,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Interaction, GuardError> {
        let canceled = self
            .write_through(|ledger| {
                let id = visible(ledger.index.get(None, interaction)?, caller)?
                    .id
                    .clone();
                if !ledger.reservations().contains_key(&id) {
                    return Err(GuardError::FailedPrecondition(format!(
                        "interaction `{id}` is not an open reservation"
                    )));
                }
                let values = InteractionInput {
                    status: Some(Status::Canceled.as_str().to_owned()),
                    ..InteractionInput::default()
                };
                let canceled = ledger.index.plan_update_fields(
                    None,
                    &id,
                    &values,
                    &["status".to_owned()],
                    now,
                    Some(&caller.name),
                )?;
                let changes = vec![
                    Change::Interaction(Box::new(canceled.clone())),
                    Change::ReservationClosed(id),
                ];
                Ok((changes, canceled))
            })
            .await?;
        Ok(canceled)
    }
}
