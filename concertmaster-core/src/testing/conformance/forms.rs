//! `FormStore`: forms, links, drafts, responses and their reviews.

use super::*;

/// A form answer stored with its node's wake-up delivers it in the same
/// change (holding it, or ending the wait), and so does a review; a
/// refused answer delivers nothing.
pub async fn form_answers_and_reviews_carry_their_wakeups<S: Store + FormStore>(store: &S) {
    let a = tenant_a();
    let mut r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    let mut answer = response(&a, "profile", "jane@acme.test", 1);
    answer.run_id = Some(r.id);
    answer.node_id = Some(NodeId::new("ask"));
    assert_eq!(
        ok!(store
            .insert_response(&answer, None, Some(&held("form:ask", json!({"answer": 1}))))
            .await),
        None,
        "no node waits yet: held"
    );
    let dup = store
        .insert_response(&answer, None, Some(&held("form:other", json!({}))))
        .await
        .expect_err("the same answer twice is refused");
    assert_eq!(dup.kind(), StoreErrorKind::Conflict, "{dup}");
    assert_eq!(
        ok!(store.held_wakeups(&a).await)
            .iter()
            .map(|w| w.key.as_str())
            .collect::<Vec<_>>(),
        ["form:ask"],
        "a refused answer holds nothing"
    );
    assert!(ok!(store
        .suspend_node(&a, &waiting(r.id, "ask", "form:ask", None), E)
        .await)
    .is_some());

    ok!(store
        .suspend_node(&a, &waiting(r.id, "review", "review:ask", None), E)
        .await);
    r.status = RunStatus::Waiting;
    ok!(store.update_run(&r, E).await);
    let review = Review {
        status: ReviewStatus::Approved,
        reviewer: "rita".into(),
        comment: None,
        at: t0() + Duration::hours(1),
    };
    let wake = |reviewed: &FormResponse| {
        Some(held(
            "review:ask",
            json!({ "status": reviewed.review_status }),
        ))
    };
    let (reviewed, woke) = ok!(store.review_response(&a, answer.id, &review, &wake).await);
    assert_eq!(reviewed.review_status, ReviewStatus::Approved);
    let woke = woke.expect("the review ends the stored wait");
    assert_eq!(woke.node_id.as_str(), "review");
    let record = ok!(store.node_executions(&a, r.id).await)
        .into_iter()
        .find(|e| e.node_id.as_str() == "review")
        .expect("the review node's record");
    assert_eq!(
        record
            .resumed
            .map(|resumed| resumed.wakeup_payload().clone()),
        Some(json!({"status": "approved"}))
    );
}

/// Form versions are immutable; the latest is the highest; tenants are apart.
pub async fn form_versions_are_immutable<S: Store + FormStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_form(&a, &form("profile", 1)).await);
    ok!(store.insert_form(&a, &form("profile", 2)).await);
    let err = store
        .insert_form(&a, &form("profile", 2))
        .await
        .expect_err("a stored version cannot be stored again");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let id = FormId::new("profile");
    assert_eq!(
        ok!(store.form(&a, &id, None).await),
        Some(form("profile", 2))
    );
    assert_eq!(
        ok!(store.form(&a, &id, Some(1)).await),
        Some(form("profile", 1))
    );
    assert_eq!(
        ok!(store.form(&b, &id, None).await),
        None,
        "tenant b sees no form of a"
    );
}

/// A link is used by exactly one response, never after it expired, and
/// never by another tenant's response; a refused submission stores nothing.
pub async fn a_form_link_is_used_once<S: Store + FormStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_link(&link(&a, "hash-1", 7)).await);
    ok!(store.insert_link(&link(&a, "hash-old", 0)).await);
    assert_eq!(
        store
            .insert_link(&link(&a, "hash-1", 7))
            .await
            .map_err(|e| e.kind()),
        Err(StoreErrorKind::Conflict)
    );
    let stored = ok!(store.link("hash-1").await).expect("the link is found by its hash");
    assert_eq!(stored.tenant, a);
    assert_eq!(stored.wait_key.as_deref(), Some("responses:send"));

    let foreign = response(&b, "profile", "mallory@evil.test", 1);
    let err = store
        .insert_response(&foreign, Some("hash-1"), None)
        .await
        .expect_err("another tenant's response cannot use the link");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");

    let first = response(&a, "profile", "jane@acme.test", 1);
    ok!(store.insert_response(&first, Some("hash-1"), None).await);
    let used = ok!(store.link("hash-1").await).expect("still there");
    assert_eq!(used.used_at, Some(first.submitted_at));

    let second = response(&a, "profile", "jane@acme.test", 2);
    let err = store
        .insert_response(&second, Some("hash-1"), None)
        .await
        .expect_err("a used link is refused");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let late = response(&a, "profile", "jane@acme.test", 3);
    let err = store
        .insert_response(&late, Some("hash-old"), None)
        .await
        .expect_err("an expired link is refused");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        ok!(store.link("hash-old").await).and_then(|l| l.used_at),
        None
    );

    let stored = ok!(store.responses(&a, &ResponseFilter::all()).await);
    assert_eq!(stored, vec![first], "refused submissions store nothing");
    assert!(ok!(store.responses(&b, &ResponseFilter::all()).await).is_empty());
}

/// A link keeps one draft, replaced by each save, while it is unused and
/// not expired; its submission removes the draft; retention purges old
/// drafts with old responses.
pub async fn a_link_keeps_one_draft_until_it_is_used<S: Store + FormStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_link(&link(&a, "hash-d", 7)).await);
    ok!(store.insert_link(&link(&a, "hash-gone", 0)).await);
    ok!(store.insert_link(&link(&a, "hash-kept", 7)).await);
    let draft =
        |tenant: &TenantId, hash: &str, minutes: i64, company: &str| crate::form::FormDraft {
            token_hash: hash.into(),
            tenant: tenant.clone(),
            data: json!({ "company": company }),
            saved_at: t0() + Duration::minutes(minutes),
        };
    assert!(ok!(store.draft("hash-d").await).is_none());
    ok!(store.save_draft(&draft(&a, "hash-d", 1, "AC")).await);
    let later = draft(&a, "hash-d", 2, "ACME");
    ok!(store.save_draft(&later).await);
    assert_eq!(
        ok!(store.draft("hash-d").await),
        Some(later),
        "the last save wins"
    );

    let err = store
        .save_draft(&draft(&b, "hash-d", 3, "evil"))
        .await
        .expect_err("another tenant's draft cannot use the link");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let err = store
        .save_draft(&draft(&a, "no-such-hash", 3, "x"))
        .await
        .expect_err("an unknown link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let err = store
        .save_draft(&draft(&a, "hash-gone", 3, "x"))
        .await
        .expect_err("an expired link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(ok!(store.draft("hash-gone").await).is_none());

    ok!(store
        .insert_response(
            &response(&a, "profile", "jane@acme.test", 4),
            Some("hash-d"),
            None
        )
        .await);
    assert!(
        ok!(store.draft("hash-d").await).is_none(),
        "the submission removes the draft"
    );
    let err = store
        .save_draft(&draft(&a, "hash-d", 5, "again"))
        .await
        .expect_err("a used link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");

    ok!(store.save_draft(&draft(&a, "hash-kept", 10, "later")).await);
    ok!(store
        .delete_responses(&a, &FormId::new("profile"), t0() + Duration::minutes(10))
        .await);
    assert!(
        ok!(store.draft("hash-kept").await).is_some(),
        "saved at the cut-off: kept"
    );
    ok!(store
        .delete_responses(&a, &FormId::new("profile"), t0() + Duration::minutes(11))
        .await);
    assert!(
        ok!(store.draft("hash-kept").await).is_none(),
        "purged with the responses"
    );
}

/// Responses filter by form, node, respondent and review state, newest
/// first; a response is decided once.
pub async fn responses_filter_and_are_reviewed_once<S: Store + FormStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    let asking = run(&a, "w", RunStatus::Waiting, 0);
    ok!(store.insert_run(&asking).await);
    let run_id = asking.id;
    let mut asked = response(&a, "profile", "jane@acme.test", 1);
    asked.run_id = Some(run_id);
    asked.node_id = Some(NodeId::new("wait"));
    let other = response(&a, "profile", "joe@acme.test", 2);
    let survey = response(&a, "survey", "jane@acme.test", 3);
    for r in [&asked, &other, &survey] {
        ok!(store.insert_response(r, None, None).await);
    }
    let ids = |rs: Vec<FormResponse>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::form("profile"))
            .await)),
        vec![other.id, asked.id]
    );
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::node(run_id, "wait"))
            .await)),
        vec![asked.id]
    );
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::all().respondent("jane@acme.test"))
            .await)),
        vec![survey.id, asked.id]
    );
    assert_eq!(
        ok!(store.responses(&a, &ResponseFilter::all().limit(1)).await).len(),
        1
    );

    let review = Review {
        status: ReviewStatus::Approved,
        reviewer: "rita".into(),
        comment: Some("complete".into()),
        at: t0() + Duration::hours(1),
    };
    let err = store
        .review_response(&b, asked.id, &review, &|_| None)
        .await
        .expect_err("tenant b cannot review a's response");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let (reviewed, woke) = ok!(store
        .review_response(&a, asked.id, &review, &|_| None)
        .await);
    assert_eq!(woke, None, "no wake-up asked for, none delivered");
    assert_eq!(reviewed.review_status, ReviewStatus::Approved);
    assert_eq!(reviewed.review, Some(review.clone()));
    let err = store
        .review_response(&a, asked.id, &review, &|_| None)
        .await
        .expect_err("a decided response is not decided again");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        ids(ok!(store
            .responses(
                &a,
                &ResponseFilter::form("profile").status(ReviewStatus::Pending)
            )
            .await)),
        vec![other.id]
    );
    let approved = ok!(store
        .responses(
            &a,
            &ResponseFilter::form("profile").status(ReviewStatus::Approved)
        )
        .await);
    assert_eq!(approved, vec![reviewed], "the review reads back as written");
}

/// Erasing removes a response's personal data and keeps the rest;
/// purging deletes one form's responses older than a time, of one tenant.
pub async fn responses_are_erased_and_purged<S: Store + FormStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    let old = response(&a, "profile", "jane@acme.test", 1);
    let new = response(&a, "profile", "joe@acme.test", 100);
    let survey = response(&a, "survey", "jane@acme.test", 1);
    let theirs = response(&b, "profile", "bob@b.test", 1);
    for r in [&old, &new, &survey, &theirs] {
        ok!(store.insert_response(r, None, None).await);
    }
    let blanked = json!({"email": null, "size": 1});
    let at = t0() + Duration::days(1);
    ok!(store.erase_response(&a, old.id, &blanked, at).await);
    let err = store
        .erase_response(&b, old.id, &blanked, at)
        .await
        .expect_err("tenant b cannot erase a's response");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let erased = ok!(store.responses(&a, &ResponseFilter::form("profile")).await)
        .into_iter()
        .find(|r| r.id == old.id)
        .expect("an erased response stays");
    assert_eq!(erased.data, blanked);
    assert_eq!(erased.respondent, None);
    assert_eq!(erased.submitter, Submitter::default());
    assert_eq!(erased.erased_at, Some(at));
    assert_eq!(erased.consent, old.consent, "the consent record is kept");

    let cut = t0() + Duration::minutes(50);
    assert_eq!(
        ok!(store
            .delete_responses(&a, &FormId::new("profile"), cut)
            .await),
        1
    );
    let left = ok!(store.responses(&a, &ResponseFilter::all()).await);
    let left: Vec<_> = left.into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec![new.id, survey.id]);
    assert_eq!(
        ok!(store.responses(&b, &ResponseFilter::all()).await).len(),
        1
    );
}
