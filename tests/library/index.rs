//! The per-borrower index: ids, aliases, updates, deletes, chains, debts and
//! pruning, through the public `Index` API only.

use chrono::{DateTime, Duration, TimeZone, Utc};
use compliance_guard::index::{DebtKey, Index, IndexConfig, IndexError};
use compliance_guard::model::{
    AnyId, InteractionInput, Status, StatusDetails, ValidationError, is_any_id,
};

use crate::support::consts::{P, Q};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 14, 30, 0).unwrap()
}

fn call(direction: &str) -> InteractionInput {
    InteractionInput {
        channel: Some("voice".to_owned()),
        direction: Some(direction.to_owned()),
        status: Some("attempted".to_owned()),
        ..InteractionInput::default()
    }
}

fn call_ext(direction: &str, external_id: &str) -> InteractionInput {
    InteractionInput {
        external_id: Some(external_id.to_owned()),
        ..call(direction)
    }
}

fn reply_to(previous: &str) -> InteractionInput {
    InteractionInput {
        previous_interaction_id: Some(previous.to_owned()),
        ..call("outbound")
    }
}

/// Creates a record and returns our id of it.
fn create(index: &mut Index, person: &str, input: &InteractionInput) -> String {
    match index.create(person, input, now()) {
        Ok(r) => r.id.clone(),
        Err(e) => panic!("create for {person} refused: {e}"),
    }
}

/// The ids of a person's counting entries, in time order.
fn entry_ids(index: &Index, person: &str) -> Vec<String> {
    let view = index.view(person).unwrap();
    view.entries()
        .iter()
        .map(|e| view.interaction_id(e.key).to_owned())
        .collect()
}

#[test]
fn create_assigns_it_ids_in_any_id_form() {
    let mut index = Index::default();
    let a = create(&mut index, P, &call("outbound"));
    let b = create(&mut index, P, &call("outbound"));
    for id in [&a, &b] {
        assert!(id.starts_with("IT-"), "{id}");
        assert!(is_any_id(id), "{id}");
        assert_eq!(AnyId::parse("id", id).unwrap(), AnyId::Ours(id));
    }
    assert_ne!(a, b);
    assert_eq!(index.len(), 2);
    let r = index.get(None, &a).unwrap();
    assert_eq!(r.id, a);
    assert_eq!(r.person_id, P);
    assert_eq!(entry_ids(&index, P), vec![a, b]);
}

#[test]
fn a_given_id_is_kept_and_a_taken_one_refused() {
    let mut index = Index::default();
    let given = InteractionInput {
        id: Some("IT-CUST-0001".to_owned()),
        ..call("outbound")
    };
    assert_eq!(create(&mut index, P, &given), "IT-CUST-0001");
    assert_eq!(
        index.create(Q, &given, now()).unwrap_err(),
        IndexError::Duplicate {
            field: "id",
            value: "IT-CUST-0001".to_owned(),
            existing: "IT-CUST-0001".to_owned()
        }
    );
    // An `ext-` id is not ours to take.
    let ext = InteractionInput {
        id: Some("ext-mine".to_owned()),
        ..call("outbound")
    };
    assert_eq!(
        index.create(P, &ext, now()).unwrap_err(),
        IndexError::Invalid(ValidationError::InvalidId {
            field: "id",
            value: "ext-mine".to_owned()
        })
    );
    assert_eq!(index.len(), 1);
}

#[test]
fn lookups_by_our_id_and_by_external_id() {
    let mut index = Index::default();
    let id = create(&mut index, P, &call_ext("outbound", "call-77"));
    let by_ours = index.get(Some(P), &id).unwrap();
    assert_eq!(by_ours.external_id.as_deref(), Some("call-77"));
    let by_ext = index.get(Some(P), "ext-call-77").unwrap();
    assert_eq!(by_ext.id, id);
    assert_eq!(index.get(None, "ext-call-77").unwrap().id, id);

    // Not this person's, not known.
    create(&mut index, Q, &call("outbound"));
    assert_eq!(
        index.get(Some(Q), &id).unwrap_err(),
        IndexError::UnknownInteraction {
            person: Q.to_owned(),
            id: id.clone()
        }
    );
    assert_eq!(
        index.get(None, "ext-nope").unwrap_err(),
        IndexError::UnknownInteraction {
            person: "*".to_owned(),
            id: "ext-nope".to_owned()
        }
    );
}

#[test]
fn duplicate_external_id_is_refused() {
    let mut index = Index::default();
    let first = create(&mut index, P, &call_ext("outbound", "dup-1"));
    let e = index
        .create(P, &call_ext("inbound", "dup-1"), now())
        .unwrap_err();
    assert_eq!(
        e,
        IndexError::Duplicate {
            field: "externalId",
            value: "dup-1".to_owned(),
            existing: first.clone()
        }
    );
    assert_eq!(
        e.to_string(),
        format!("`externalId` `dup-1` is already used by interaction `{first}`")
    );
    // Also for another person: external ids are unique across the index.
    assert!(matches!(
        index.create(Q, &call_ext("outbound", "dup-1"), now()),
        Err(IndexError::Duplicate {
            field: "externalId",
            ..
        })
    ));
    assert_eq!(index.len(), 1);
    assert_eq!(entry_ids(&index, P), vec![first]);
    assert!(index.view(Q).unwrap().entries().is_empty());
}

#[test]
fn a_person_first_named_by_external_id_gets_our_id_and_one_history() {
    let mut index = Index::default();
    let a = create(&mut index, "ext-crm-42", &call("outbound"));
    let person_id = index.get(None, &a).unwrap().person_id.clone();
    assert!(person_id.starts_with("BO-"), "{person_id}");
    assert!(is_any_id(&person_id), "{person_id}");
    assert!(matches!(
        AnyId::parse("personId", &person_id).unwrap(),
        AnyId::Ours(_)
    ));

    let b = create(&mut index, &person_id, &call("inbound"));
    assert_eq!(index.get(None, &b).unwrap().person_id, person_id);
    assert_eq!(entry_ids(&index, "ext-crm-42"), vec![a.clone(), b.clone()]);
    assert_eq!(entry_ids(&index, &person_id), vec![a.clone(), b]);
    assert_eq!(
        index.find_person("ext-crm-42").unwrap(),
        index.find_person(&person_id).unwrap()
    );
    assert_eq!(index.get(Some("ext-crm-42"), &a).unwrap().id, a);
    assert_eq!(index.get(Some(&person_id), &a).unwrap().id, a);
}

#[test]
fn linking_two_people_with_records_is_refused() {
    let mut index = Index::default();
    create(&mut index, P, &call("outbound"));
    let other = create(&mut index, "ext-X", &call("outbound"));
    let other_person = index.get(None, &other).unwrap().person_id.clone();

    let e = index.link_person(P, "X").unwrap_err();
    assert_eq!(
        e,
        IndexError::WouldJoin {
            a: P.to_owned(),
            b: "ext-X".to_owned(),
            a_id: P.to_owned(),
            b_id: other_person.clone(),
        }
    );
    assert!(e.to_string().contains("would join two histories"), "{e}");
    // Nothing moved.
    assert_eq!(entry_ids(&index, "ext-X"), vec![other]);
    assert_eq!(entry_ids(&index, P).len(), 1);
    assert_ne!(
        index.find_person(P).unwrap(),
        index.find_person("ext-X").unwrap()
    );
}

#[test]
fn linking_to_an_empty_person_is_accepted() {
    let mut index = Index::default();
    let a = create(&mut index, P, &call("outbound"));
    let empty = index.register_person("ext-Y").unwrap();
    assert_ne!(Some(empty), index.find_person(P).unwrap());

    let kept = index.link_person(P, "Y").unwrap();
    assert_eq!(Some(kept), index.find_person(P).unwrap());
    assert_eq!(index.find_person("ext-Y").unwrap(), Some(kept));
    assert_eq!(index.person_id(kept), P);
    assert_eq!(entry_ids(&index, "ext-Y"), vec![a.clone()]);

    // A record created under the alias joins the same history.
    let b = create(&mut index, "ext-Y", &call("inbound"));
    assert_eq!(index.get(None, &b).unwrap().person_id, P);
    assert_eq!(entry_ids(&index, P), vec![a, b]);

    // Linking an alias nobody has used yet also works.
    let k = index.link_person(Q, "Z").unwrap();
    let c = create(&mut index, "ext-Z", &call("outbound"));
    assert_eq!(index.find_person(Q).unwrap(), Some(k));
    assert_eq!(index.get(None, &c).unwrap().person_id, Q);
}

#[test]
fn an_update_of_status_shows_in_the_view_at_once() {
    let mut index = Index::default();
    let id = create(&mut index, P, &call("outbound"));
    assert_eq!(
        index.view(P).unwrap().entries()[0].status,
        Status::Attempted
    );

    let later = now() + Duration::minutes(5);
    let patch = InteractionInput {
        status: Some("failed".to_owned()),
        status_details: Some("voiceNumberDisconnected".to_owned()),
        ..InteractionInput::default()
    };
    let r = index.update(Some(P), &id, &patch, later).unwrap();
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.updated_at, Some(later));
    assert_eq!(
        r.started_at,
        now(),
        "fields the patch does not set are kept"
    );

    let view = index.view(P).unwrap();
    assert_eq!(view.entries().len(), 1);
    assert_eq!(view.entries()[0].status, Status::Failed);
    assert_eq!(
        view.entries()[0].details,
        Some(StatusDetails::VoiceNumberDisconnected)
    );
}

#[test]
fn an_update_is_validated_as_a_whole_record() {
    let mut index = Index::default();
    let id = create(&mut index, P, &call("outbound"));
    let patch = InteractionInput {
        status: Some("succeeded".to_owned()),
        status_details: Some("emailDelivered".to_owned()),
        ..InteractionInput::default()
    };
    let e = index.update(Some(P), &id, &patch, now()).unwrap_err();
    assert_eq!(
        e,
        IndexError::Invalid(ValidationError::DetailsChannel {
            details: StatusDetails::EmailDelivered,
            channel: compliance_guard::model::Channel::Voice,
            required: compliance_guard::model::Channel::Email,
        })
    );
    // Refused updates change nothing.
    let r = index.get(Some(P), &id).unwrap();
    assert_eq!(
        (r.status, r.status_details, r.updated_at),
        (Status::Attempted, None, None)
    );
    assert_eq!(
        index.view(P).unwrap().entries()[0].status,
        Status::Attempted
    );

    // A patch that is fine on its own but not with the stored status.
    let details_only = InteractionInput {
        status_details: Some("voiceNumberDisconnected".to_owned()),
        ..Default::default()
    };
    assert!(matches!(
        index.update(Some(P), &id, &details_only, now()),
        Err(IndexError::Invalid(ValidationError::DetailsStatus {
            required: Status::Failed,
            ..
        }))
    ));
}

#[test]
fn an_empty_update_keeps_every_field() {
    let mut index = Index::default();
    let input: InteractionInput = serde_json::from_str(
        r#"{"channel":"email","direction":"outbound","status":"succeeded","statusDetails":"emailOpened",
            "externalId":"mail-9","subject":"locStatementGenerated","theme":"outOpsLoan",
            "borrowerSelectedTheme":"inbBug","startedAt":"2024-03-01T09:15:30.250+02:00",
            "endedAt":"2024-03-01","scheduledAtFrom":"2024-03-01T07:00:00Z","loanId":"L0",
            "loanIds":["L1","L0"],"isTransactional":true,"sensitive":false,"isExternal":true,
            "contactId":"CT-1","contactExternalId":"c-1",
            "contact":{"kind":"workEmail","value":"a@b.c","name":"A"},"metaData":{"k":[1,2]},
            "content":{"body":"hi"},"failureDescriptionShort":"s","twilioErrorCode":"30003",
            "createdBy":"agent-7"}"#,
    )
    .unwrap();
    let before = index.create(P, &input, now()).unwrap().clone();
    let later = now() + Duration::days(1);
    let after = index
        .update(Some(P), "ext-mail-9", &InteractionInput::default(), later)
        .unwrap()
        .clone();
    assert_eq!(after.updated_at, Some(later));
    assert_eq!(
        compliance_guard::model::Interaction {
            updated_at: None,
            ..after
        },
        before
    );
}

#[test]
fn soft_delete_keeps_the_record_and_drops_the_entry() {
    let mut index = Index::default();
    let keep = create(&mut index, P, &call("outbound"));
    let gone = create(&mut index, P, &call_ext("outbound", "del-1"));
    let at = now() + Duration::hours(1);

    let r = index.delete(Some(P), "ext-del-1", at).unwrap();
    assert_eq!(r.id, gone);
    assert_eq!(r.deleted_at, Some(at));

    assert_eq!(index.len(), 2);
    assert_eq!(index.get(Some(P), &gone).unwrap().deleted_at, Some(at));
    assert_eq!(entry_ids(&index, P), vec![keep]);

    assert_eq!(
        index.delete(Some(P), &gone, at).unwrap_err(),
        IndexError::Deleted(gone.clone())
    );
    let patch = InteractionInput {
        status: Some("failed".to_owned()),
        ..Default::default()
    };
    assert_eq!(
        index.update(Some(P), &gone, &patch, at).unwrap_err(),
        IndexError::Deleted(gone)
    );
}

#[test]
fn deleting_a_record_not_supplied_by_the_lender_is_refused() {
    let mut index = Index::default();
    let ours = InteractionInput {
        is_external: Some(false),
        ..call("outbound")
    };
    let id = create(&mut index, P, &ours);
    let e = index.delete(Some(P), &id, now()).unwrap_err();
    assert_eq!(e, IndexError::NotExternal(id.clone()));
    assert!(e.to_string().contains("`isExternal` is false"), "{e}");
    assert_eq!(index.get(None, &id).unwrap().deleted_at, None);
    assert_eq!(entry_ids(&index, P), vec![id]);
}

#[test]
fn previous_chain_walks_back_nearest_first() {
    let mut index = Index::default();
    let a = create(&mut index, P, &call_ext("inbound", "a"));
    let b = create(&mut index, P, &reply_to("ext-a"));
    let c = create(&mut index, P, &reply_to(&b));
    let ids = |chain: Vec<&compliance_guard::model::Interaction>| {
        chain.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(index.previous_chain(Some(P), &c).unwrap()),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        ids(index.previous_chain(Some(P), &b).unwrap()),
        vec![a.clone()]
    );
    assert!(index.previous_chain(Some(P), &a).unwrap().is_empty());

    // A link to an id nobody has ends the chain.
    let d = create(&mut index, P, &reply_to("ext-unknown"));
    assert!(index.previous_chain(None, &d).unwrap().is_empty());
}

#[test]
fn previous_chain_stops_at_a_cycle() {
    let mut index = Index::default();
    let first = InteractionInput {
        id: Some("IT-CYCL-000A".to_owned()),
        previous_interaction_id: Some("IT-CYCL-000C".to_owned()),
        ..call("inbound")
    };
    create(&mut index, P, &first);
    let b = create(&mut index, P, &reply_to("IT-CYCL-000A"));
    let third = InteractionInput {
        id: Some("IT-CYCL-000C".to_owned()),
        ..reply_to(&b)
    };
    create(&mut index, P, &third);

    let chain: Vec<String> = index
        .previous_chain(Some(P), "IT-CYCL-000C")
        .unwrap()
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(chain, vec![b.clone(), "IT-CYCL-000A".to_owned()]);
    let chain: Vec<String> = index
        .previous_chain(Some(P), "IT-CYCL-000A")
        .unwrap()
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(chain, vec!["IT-CYCL-000C".to_owned(), b]);
}

#[test]
fn answers_borrower_only_for_an_inbound_of_the_same_person() {
    let mut index = Index::default();
    let inbound = create(&mut index, P, &call_ext("inbound", "in-1"));
    let _second = create(&mut index, P, &call_ext("inbound", "in-2"));
    let outbound = create(&mut index, P, &call("outbound"));
    let q_inbound = create(&mut index, Q, &call("inbound"));

    let by_ours = create(&mut index, P, &reply_to(&inbound));
    // Each message is answered once: this reply is to the second one.
    let by_ext = create(&mut index, P, &reply_to("ext-in-2"));
    let again = create(&mut index, P, &reply_to(&inbound));
    let to_outbound = create(&mut index, P, &reply_to(&outbound));
    let to_other_person = create(&mut index, P, &reply_to(&q_inbound));
    let to_unknown = create(&mut index, P, &reply_to("IT-NONE-0000"));

    let view = index.view(P).unwrap();
    let answers = |id: &str| {
        view.entries()
            .iter()
            .find(|e| view.interaction_id(e.key) == id)
            .map(|e| view.answers_borrower(e))
            .unwrap()
    };
    assert!(answers(&by_ours));
    assert!(answers(&by_ext));
    assert!(
        !answers(&again),
        "a second answer to one message is not a reply"
    );
    assert!(!answers(&to_outbound));
    assert!(!answers(&to_other_person));
    assert!(!answers(&to_unknown));
    assert!(!answers(&inbound));

    assert!(index.answers_borrower(P, &inbound));
    assert!(index.answers_borrower(P, "ext-in-1"));
    assert!(!index.answers_borrower(P, &outbound));
    assert!(!index.answers_borrower(P, &q_inbound));
    assert!(!index.answers_borrower(Q, &inbound));
    assert!(!index.answers_borrower(P, "IT-NONE-0000"));
    assert!(!index.answers_borrower("BO-NOBO-DY00", &inbound));
}

#[test]
fn a_deleted_inbound_is_not_answered() {
    let mut index = Index::default();
    let inbound = create(&mut index, P, &call("inbound"));
    index.delete(Some(P), &inbound, now()).unwrap();
    assert!(!index.answers_borrower(P, &inbound));
    let reply = create(&mut index, P, &reply_to(&inbound));
    let view = index.view(P).unwrap();
    assert_eq!(view.entries().len(), 1);
    assert_eq!(view.interaction_id(view.entries()[0].key), reply);
    assert!(!view.answers_borrower(&view.entries()[0]));
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn declared_debts_group_loans() {
    let mut index = Index::default();
    let with_loans = InteractionInput {
        loan_ids: Some(names(&["L1", "L3"])),
        ..call("outbound")
    };
    create(&mut index, P, &with_loans);
    index
        .declare_debt(P, "ACC-1", &names(&["L1", "L2"]))
        .unwrap();

    let view = index.view(P).unwrap();
    let one = view.debts_of_loans(&names(&["L1"]));
    assert_eq!(one.len(), 1);
    assert!(matches!(one[0], DebtKey::Account(_)));
    assert_eq!(view.debts_of_loans(&names(&["L2"])), one);
    assert_eq!(view.debts_of_loans(&names(&["L1", "L2"])), one);
    assert_eq!(view.debt_name(one[0], &[]), "ACC-1");
    assert_eq!(view.accounts(), one);

    // A loan outside every account is its own debt; an unseen one is unlisted.
    let l3 = view.debts_of_loans(&names(&["L3"]));
    assert!(matches!(l3.as_slice(), [DebtKey::Loan(_)]));
    assert_eq!(view.debt_name(l3[0], &[]), "L3");
    let send = names(&["L1", "L9"]);
    let mixed = view.debts_of_loans(&send);
    assert_eq!(mixed, vec![one[0], DebtKey::Unlisted(1)]);
    assert_eq!(view.debt_name(DebtKey::Unlisted(1), &send), "L9");

    // Another borrower's view does not see P's account.
    index.register_person(Q).unwrap();
    let q = index.view(Q).unwrap();
    assert!(matches!(
        q.debts_of_loans(&names(&["L1"])).as_slice(),
        [DebtKey::Loan(_)]
    ));
}

#[test]
fn a_loan_in_two_accounts_is_refused() {
    let mut index = Index::default();
    index
        .declare_debt(P, "ACC-1", &names(&["L1", "L2"]))
        .unwrap();
    let e = index
        .declare_debt(P, "ACC-2", &names(&["L2", "L3"]))
        .unwrap_err();
    assert_eq!(
        e,
        IndexError::LoanInTwoDebts {
            loan: "L2".to_owned(),
            debt: "ACC-1".to_owned()
        }
    );
    assert_eq!(
        e.to_string(),
        "loan `L2` already belongs to debt `ACC-1`; declare `ACC-1` without it first"
    );
    let view = index.view(P).unwrap();
    assert_eq!(
        view.accounts().len(),
        1,
        "the refused declaration left nothing behind"
    );
    assert_eq!(view.debts_of_loans(&names(&["L3"])).len(), 1);
    assert!(!matches!(
        view.debts_of_loans(&names(&["L3"]))[0],
        DebtKey::Account(_)
    ));

    // Redeclaring ACC-1 without L2 frees it.
    index.declare_debt(P, "ACC-1", &names(&["L1"])).unwrap();
    index
        .declare_debt(P, "ACC-2", &names(&["L2", "L3"]))
        .unwrap();
    let view = index.view(P).unwrap();
    assert_eq!(
        view.debts_of_loans(&names(&["L2"])),
        view.debts_of_loans(&names(&["L3"]))
    );
    assert_ne!(
        view.debts_of_loans(&names(&["L1"])),
        view.debts_of_loans(&names(&["L2"]))
    );
}

#[test]
fn prune_drops_old_entries_but_keeps_records() {
    let mut index = Index::new(IndexConfig { horizon_days: 30 });
    let at = |days: i64| InteractionInput {
        started_at: Some((now() - Duration::days(days)).to_rfc3339()),
        ..call("outbound")
    };
    let old = create(&mut index, P, &at(40));
    let edge = create(&mut index, P, &at(30));
    let recent = create(&mut index, P, &at(1));
    let future = InteractionInput {
        status: Some("scheduled".to_owned()),
        scheduled_at_from: Some((now() + Duration::days(400)).to_rfc3339()),
        ..call("outbound")
    };
    let ahead = create(&mut index, P, &future);

    assert_eq!(index.prune(now()), 1);
    assert_eq!(entry_ids(&index, P), vec![edge, recent, ahead]);
    assert_eq!(index.len(), 4);
    assert_eq!(index.get(Some(P), &old).unwrap().id, old);
    assert_eq!(index.prune(now()), 0, "a second prune finds nothing more");
}

#[test]
fn view_of_a_stranger_is_empty_and_a_bad_id_is_refused() {
    let index = Index::default();
    assert!(index.view("BO-NEWB-0001").unwrap().entries().is_empty());
    assert!(index.view("ext-never-seen").unwrap().entries().is_empty());
    assert_eq!(
        index.view("bo-lower").unwrap_err(),
        IndexError::Invalid(ValidationError::InvalidId {
            field: "personId",
            value: "bo-lower".to_owned()
        })
    );
}

#[test]
fn a_reply_stops_answering_when_its_inbound_is_deleted() {
    let mut index = Index::default();
    let inbound = create(&mut index, P, &call("inbound"));
    let reply = create(&mut index, P, &reply_to(&inbound));
    let answers = |index: &Index| {
        let view = index.view(P).unwrap();
        view.entries()
            .iter()
            .find(|e| view.interaction_id(e.key) == reply)
            .map(|e| view.answers_borrower(e))
            .unwrap()
    };
    assert!(answers(&index));
    index.delete(Some(P), &inbound, now()).unwrap();
    assert!(!index.answers_borrower(P, &inbound));
    assert!(!answers(&index));
}

#[test]
fn a_status_change_drops_details_tied_to_the_old_status() {
    let mut index = Index::default();
    let mut failed = call("outbound");
    failed.status = Some("failed".into());
    failed.status_details = Some("voiceNumberDisconnected".into());
    let id = create(&mut index, P, &failed);
    let patch = InteractionInput {
        status: Some("attempted".into()),
        ..InteractionInput::default()
    };
    let updated = index.update(Some(P), &id, &patch, now()).unwrap();
    assert_eq!(updated.status, Status::Attempted);
    assert_eq!(updated.status_details, None);
    // Details on no status list stay through a status change.
    let mut rang = call("outbound");
    rang.status_details = Some("voiceRangNoPickup".into());
    let id = create(&mut index, P, &rang);
    let patch = InteractionInput {
        status: Some("failed".into()),
        ..InteractionInput::default()
    };
    let updated = index.update(Some(P), &id, &patch, now()).unwrap();
    assert_eq!(
        updated.status_details,
        Some(StatusDetails::VoiceRangNoPickup)
    );
}

#[test]
fn previous_chain_stays_within_the_person() {
    let mut index = Index::default();
    let other = create(&mut index, "BO-OTHR-0001", &call("inbound"));
    let mine = create(&mut index, P, &reply_to(&other));
    assert!(index.previous_chain(Some(P), &mine).unwrap().is_empty());
}

#[test]
fn a_link_moves_each_name_to_one_person_and_empties_the_other() {
    let mut index = Index::default();
    let a = create(&mut index, P, &call("outbound"));
    let empty = index.register_person("ext-Y").unwrap();
    let (empty_id, _, _) = index.person_names(empty);
    assert_eq!(empty_id, "BO-0000-00000001");

    let kept = index.link_person(P, "Y").unwrap();
    assert_ne!(kept, empty);
    // Every name finds the person who kept them, and only them.
    for name in [P, "BO-0000-00000001", "ext-Y"] {
        assert_eq!(index.find_person(name).unwrap(), Some(kept), "{name}");
    }
    assert_eq!(
        index.person_names(kept),
        (
            P.to_owned(),
            vec!["BO-0000-00000001".to_owned()],
            vec!["Y".to_owned()]
        )
    );
    assert_eq!(index.person_names(empty), (String::new(), vec![], vec![]));
    assert_eq!(entry_ids(&index, "BO-0000-00000001"), vec![a.clone()]);

    // A second external id moves from another empty person too, and the
    // first stays where it was.
    let other = index.register_person("ext-W").unwrap();
    assert_eq!(index.link_person(P, "W").unwrap(), kept);
    assert_eq!(index.find_person("ext-W").unwrap(), Some(kept));
    assert_eq!(index.find_person("ext-Y").unwrap(), Some(kept));
    assert_eq!(index.person_names(other).2, Vec::<String>::new());
    // The next generated id passes over every id a person had.
    let fresh = index.register_person("ext-V").unwrap();
    assert_eq!(index.person_id(fresh), "BO-0000-00000003");
    assert_eq!(entry_ids(&index, "ext-W"), vec![a]);
}
