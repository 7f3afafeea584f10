//! `DatasetStore`: collected records.

use super::*;

/// A node's collection into a dataset replaces what it collected in that
/// run before; datasets filter by run and time, newest first, per tenant.
pub async fn datasets_replace_per_node_and_filter<S: Store + DatasetStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    let (first, second) = (RunId::new(), RunId::new());
    let node = NodeId::new("collect");
    let item = |n: i64| json!({ "n": n }).as_object().cloned().unwrap_or_default();
    ok!(store
        .put_dataset(&a, "suppliers", first, &node, &[item(1), item(2)], t0())
        .await);
    // The node ran again (a retry after a crash): its collection is replaced.
    ok!(store
        .put_dataset(
            &a,
            "suppliers",
            first,
            &node,
            &[item(1), item(2), item(3)],
            t0()
        )
        .await);
    let later = t0() + Duration::hours(1);
    ok!(store
        .put_dataset(&a, "suppliers", second, &node, &[item(10)], later)
        .await);
    ok!(store
        .put_dataset(&a, "other", second, &node, &[item(99)], later)
        .await);

    let all = ok!(store.dataset(&a, "suppliers", &DatasetFilter::all()).await);
    let ns: Vec<_> = all.iter().map(|r| r.item["n"].clone()).collect();
    assert_eq!(ns, vec![json!(10), json!(1), json!(2), json!(3)]);
    assert_eq!(all[1].run_id, first);
    assert_eq!(all[1].position, 0);
    assert_eq!(all[0].collected_at, later);

    let of_first = ok!(store
        .dataset(&a, "suppliers", &DatasetFilter::all().run(first))
        .await);
    assert_eq!(of_first.len(), 3);
    let recent = ok!(store
        .dataset(&a, "suppliers", &DatasetFilter::all().since(later))
        .await);
    assert_eq!(recent.len(), 1);
    assert_eq!(
        ok!(store
            .dataset(&a, "suppliers", &DatasetFilter::all().limit(2))
            .await)
        .len(),
        2
    );
    assert!(ok!(store.dataset(&b, "suppliers", &DatasetFilter::all()).await).is_empty());
    assert!(ok!(store.dataset(&a, "missing", &DatasetFilter::all()).await).is_empty());
}
