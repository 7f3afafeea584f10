//! `ConnectionStore`: sealed connection configs.

use super::*;

/// Connections are stored per tenant and replaced by id, their sealed bytes
/// kept exactly; tests are recorded; rotation finds them by key.
pub async fn connections_round_trip_per_tenant<S: ConnectionStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store
        .save_connection(&connection(&a, "sap-prod", "k1"))
        .await);
    ok!(store
        .save_connection(&connection(&a, "netsuite", "k1"))
        .await);
    ok!(store
        .save_connection(&connection(&b, "sap-prod", "k2"))
        .await);
    let mut changed = connection(&a, "sap-prod", "k2");
    changed.active = false;
    changed.sealed_config = vec![9; 40];
    changed.updated_at = t0() + Duration::hours(1);
    ok!(store.save_connection(&changed).await);

    assert_eq!(
        ok!(store.connection(&a, "sap-prod").await),
        Some(changed.clone())
    );
    let ids: Vec<_> = ok!(store.connections(&a).await)
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["netsuite", "sap-prod"]);
    assert_eq!(
        ok!(store.connection(&b, "sap-prod").await).map(|c| c.key_id),
        Some("k2".into())
    );
    assert_eq!(ok!(store.connection(&b, "netsuite").await), None);

    let at = t0() + Duration::days(1);
    ok!(store.mark_tested(&a, "netsuite", at).await);
    assert_eq!(
        ok!(store.connection(&a, "netsuite").await).and_then(|c| c.last_tested_at),
        Some(at)
    );
    let err = store
        .mark_tested(&b, "netsuite", at)
        .await
        .expect_err("b has no netsuite");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");

    let mut with_k1: Vec<_> = ok!(store.connections_sealed_with("k1", 10).await)
        .into_iter()
        .map(|c| (c.tenant, c.id))
        .collect();
    with_k1.sort();
    assert_eq!(with_k1, vec![(a.clone(), "netsuite".to_string())]);
    assert_eq!(ok!(store.connections_sealed_with("k2", 1).await).len(), 1);
}

/// A connection is replaced only while it is stored exactly as its writer
/// read it: a change made meanwhile (a deactivation, a test, a rotation)
/// is never reverted, and another tenant's connection of the same id is
/// not touched.
pub async fn connections_are_replaced_only_as_read<S: ConnectionStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.save_connection(&connection(&a, "erp", "k1")).await);
    ok!(store.save_connection(&connection(&b, "erp", "k1")).await);
    let read = ok!(store.connection(&a, "erp").await).expect("stored");

    let mut resealed = read.clone();
    resealed.key_id = "k2".into();
    resealed.sealed_config = vec![7; 40];
    resealed.config_hash = "f".repeat(64);
    assert!(ok!(store.replace_connection(&resealed, &read).await));
    assert_eq!(
        ok!(store.connection(&a, "erp").await),
        Some(resealed.clone())
    );
    assert!(
        !ok!(store.replace_connection(&resealed, &read).await),
        "the row read is not what is stored any more"
    );

    // Deactivated after a rotation read it: the rotation's write is refused.
    let rotation_read = resealed.clone();
    let mut off = resealed.clone();
    off.active = false;
    off.updated_at = t0() + Duration::hours(2);
    assert!(ok!(store.replace_connection(&off, &resealed).await));
    let mut late = rotation_read.clone();
    late.key_id = "k3".into();
    assert!(!ok!(store.replace_connection(&late, &rotation_read).await));
    assert_eq!(
        ok!(store.connection(&a, "erp").await).map(|c| (c.active, c.key_id)),
        Some((false, "k2".to_string())),
        "the deactivation stays"
    );
    let tested = ok!(store.connection(&a, "erp").await).expect("stored");
    ok!(store
        .mark_tested(&a, "erp", t0() + Duration::hours(3))
        .await);
    let mut stale = tested.clone();
    stale.name = "renamed".into();
    assert!(
        !ok!(store.replace_connection(&stale, &tested).await),
        "a test recorded since the read counts as a change"
    );

    assert_eq!(
        ok!(store.connection(&b, "erp").await).map(|c| c.key_id),
        Some("k1".to_string()),
        "the other tenant's connection is its own"
    );
    let mut unknown = read.clone();
    unknown.id = "nope".into();
    assert!(!ok!(store.replace_connection(&unknown, &unknown).await));
}
