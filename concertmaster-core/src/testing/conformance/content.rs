//! `ContentStore`: large values in chunks.

use super::*;

/// Content is kept in chunks per tenant, written once, read back as
/// written, deleted whole. Another tenant can neither read nor delete it
/// by its id, and a write of its own under the same id is its own content:
/// it neither collides with the first tenant's chunks (a refusal would tell
/// it they exist) nor changes them.
pub async fn content_is_chunked_per_tenant_and_written_once<S: ContentStore>(store: &S) {
    let (a, b) = (tenant_a(), tenant_b());
    let id = crate::content::ContentId::new();
    for (seq, bytes) in [(0, &b"first "[..]), (1, b"second "), (2, b"")] {
        ok!(store.put_chunk(&a, id, seq, bytes).await);
    }
    assert_eq!(
        ok!(store.chunk(&a, id, 1).await).as_deref(),
        Some(&b"second "[..])
    );
    assert_eq!(ok!(store.chunk(&a, id, 2).await).as_deref(), Some(&b""[..]));
    assert!(ok!(store.chunk(&a, id, 3).await).is_none());
    assert!(
        ok!(store.chunk(&b, id, 0).await).is_none(),
        "another tenant's content"
    );
    let err = store
        .put_chunk(&a, id, 1, b"changed")
        .await
        .expect_err("a chunk is written once");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(ok!(store.delete_content(&b, id).await), 0);
    assert_eq!(
        ok!(store.chunk(&a, id, 0).await).as_deref(),
        Some(&b"first "[..]),
        "another tenant's delete by id removes nothing"
    );
    ok!(store.put_chunk(&b, id, 0, b"b's own").await);
    assert_eq!(
        ok!(store.chunk(&b, id, 0).await).as_deref(),
        Some(&b"b's own"[..])
    );
    assert_eq!(
        ok!(store.chunk(&a, id, 0).await).as_deref(),
        Some(&b"first "[..]),
        "the first tenant's chunk is unchanged"
    );
    assert_eq!(ok!(store.delete_content(&a, id).await), 3);
    assert!(ok!(store.chunk(&a, id, 0).await).is_none());
    assert_eq!(
        ok!(store.chunk(&b, id, 0).await).as_deref(),
        Some(&b"b's own"[..]),
        "deleting one tenant's content leaves the other's"
    );
}
