//! Large values passed by reference: a [`ContentRef`] in an item names
//! content kept once in the store's [`ContentStore`](crate::store::ContentStore),
//! which nodes and hosts write and read a chunk at a time through
//! [`Contents`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::ids::ContentId;

/// The key under which an item holds a reference: `{"$content": {...}}`.
pub const CONTENT_KEY: &str = "$content";

/// How large one stored chunk is (1 MiB): what a reader holds at a time.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The media type of items written as JSON lines ([`ItemWriter`]).
pub const ITEMS_MEDIA_TYPE: &str = "application/x-ndjson";

/// A reference to content in the content store, as items carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentRef {
    /// The content.
    pub id: ContentId,
    /// Its length in bytes.
    pub size: u64,
    /// The SHA-256 of its bytes, lower-case hex; checked when read to the end.
    pub sha256: String,
    /// Its media type, when known (`application/pdf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl ContentRef {
    /// The JSON an item holds for it: `{"$content": {...}}`.
    pub fn to_value(&self) -> Value {
        let mut map = serde_json::Map::new();
        map.insert(
            CONTENT_KEY.into(),
            serde_json::to_value(self).unwrap_or_default(),
        );
        Value::Object(map)
    }

    /// The reference `value` holds, if it is one (`{"$content": {...}}`).
    pub fn from_value(value: &Value) -> Option<Self> {
        let inner = value
            .as_object()
            .filter(|m| m.len() == 1)?
            .get(CONTENT_KEY)?;
        serde_json::from_value(inner.clone()).ok()
    }
}

#[cfg(feature = "runtime")]
pub use runtime::{ContentError, ContentReader, ContentWriter, Contents, ItemReader, ItemWriter};

#[cfg(feature = "runtime")]
mod runtime {
    use std::sync::Arc;

    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncRead, AsyncReadExt};

    use super::{ContentRef, CHUNK_SIZE, ITEMS_MEDIA_TYPE};
    use crate::ids::{ContentId, TenantId};
    use crate::store::{ContentStore, StoreError};

    /// Why content could not be written or read.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum ContentError {
        /// The store refused or failed.
        #[error(transparent)]
        Store(#[from] StoreError),
        /// Reading what was to be stored failed.
        #[error("content could not be read from its source: {0}")]
        Source(#[from] std::io::Error),
        /// The engine's store keeps no content
        /// ([`Store::content_store`](crate::store::Store::content_store)).
        #[error("this store keeps no content; give the engine a store that does (InMemoryStore, SqliteStore, PostgresStore) or implement Store::content_store")]
        NotKept,
        /// What the store holds is not what the reference describes.
        #[error("content {id} is damaged or incomplete: {reason}")]
        Damaged {
            /// The content.
            id: ContentId,
            /// What differs.
            reason: String,
        },
    }

    /// The content store of one tenant, as nodes and hosts use it: content
    /// goes in from a reader or bytes and comes out a chunk at a time, so
    /// neither side holds more than a chunk of it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use concertmaster_core::{InMemoryStore, content::Contents};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let contents = Contents::new(Arc::new(InMemoryStore::new()), "acme".into());
    /// let file = contents.put(&b"%PDF-1.7 ..."[..], Some("application/pdf".into())).await?;
    /// let item = file.to_value(); // {"$content": {"id": ..., "size": 12, ...}}
    ///
    /// let mut reader = contents.read(&file);
    /// let mut total = 0;
    /// while let Some(chunk) = reader.next_chunk().await? {
    ///     total += chunk.len();
    /// }
    /// assert_eq!(total, 12);
    /// # let _ = item; Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct Contents {
        store: Option<Arc<dyn ContentStore>>,
        tenant: TenantId,
    }

    impl std::fmt::Debug for Contents {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Contents")
                .field("tenant", &self.tenant)
                .finish_non_exhaustive()
        }
    }

    impl Contents {
        /// The content of `tenant` in `store`.
        pub fn new(store: Arc<dyn ContentStore>, tenant: TenantId) -> Self {
            Self {
                store: Some(store),
                tenant,
            }
        }

        /// The content of `tenant` in `store`, if there is one: every call
        /// answers [`ContentError::NotKept`] otherwise.
        pub(crate) fn of(store: Option<Arc<dyn ContentStore>>, tenant: TenantId) -> Self {
            Self { store, tenant }
        }

        fn store(&self) -> Result<&Arc<dyn ContentStore>, ContentError> {
            self.store.as_ref().ok_or(ContentError::NotKept)
        }

        /// Stores what `source` yields, a chunk at a time, and returns its
        /// reference. Should it fail part-way, the chunks written are
        /// deleted again (best effort) and no reference exists to them.
        pub async fn put(
            &self,
            mut source: impl AsyncRead + Unpin + Send,
            media_type: Option<String>,
        ) -> Result<ContentRef, ContentError> {
            let mut writer = self.writer(media_type);
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                let read = match source.read(&mut buffer).await {
                    Ok(read) => read,
                    Err(err) => {
                        writer.abandon().await;
                        return Err(err.into());
                    }
                };
                if read == 0 {
                    return writer.finish().await;
                }
                writer.write(&buffer[..read]).await?;
            }
        }

        /// A writer of new content, for a node that produces it piece by
        /// piece: [`ContentWriter::write`] as it goes, then
        /// [`ContentWriter::finish`] for the reference.
        pub fn writer(&self, media_type: Option<String>) -> ContentWriter {
            ContentWriter {
                contents: self.clone(),
                id: ContentId::new(),
                media_type,
                chunk: Vec::with_capacity(CHUNK_SIZE),
                seq: 0,
                size: 0,
                hasher: Sha256::new(),
            }
        }

        /// Stores `bytes` (already in memory) and returns its reference.
        pub async fn put_bytes(
            &self,
            bytes: &[u8],
            media_type: Option<String>,
        ) -> Result<ContentRef, ContentError> {
            self.put(bytes, media_type).await
        }

        /// A reader of the content `content` refers to, a chunk at a time.
        pub fn read(&self, content: &ContentRef) -> ContentReader {
            ContentReader {
                contents: self.clone(),
                content: content.clone(),
                seq: 0,
                read: 0,
                hasher: Some(Sha256::new()),
            }
        }

        /// Deletes the content `content` refers to.
        pub async fn delete(&self, content: &ContentRef) -> Result<(), ContentError> {
            self.store()?
                .delete_content(&self.tenant, content.id)
                .await?;
            Ok(())
        }
    }

    /// Writes new content a chunk at a time ([`Contents::writer`]); it has
    /// a reference once finished. Content left unfinished is not referred
    /// to by anything; [`ContentWriter::abandon`] deletes what was written.
    #[derive(Debug)]
    pub struct ContentWriter {
        contents: Contents,
        id: ContentId,
        media_type: Option<String>,
        chunk: Vec<u8>,
        seq: u32,
        size: u64,
        hasher: Sha256,
    }

    impl ContentWriter {
        /// Appends `bytes`; full chunks go to the store as they fill.
        /// On an error the chunks written so far are deleted.
        pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ContentError> {
            while !bytes.is_empty() {
                let room = CHUNK_SIZE - self.chunk.len();
                let (now, rest) = bytes.split_at(room.min(bytes.len()));
                self.chunk.extend_from_slice(now);
                bytes = rest;
                if self.chunk.len() == CHUNK_SIZE {
                    self.flush().await?;
                }
            }
            Ok(())
        }

        /// Stores what is left and returns the content's reference.
        pub async fn finish(mut self) -> Result<ContentRef, ContentError> {
            if !self.chunk.is_empty() || self.seq == 0 {
                self.flush().await?;
            }
            Ok(ContentRef {
                id: self.id,
                size: self.size,
                sha256: hex::encode(self.hasher.finalize()),
                media_type: self.media_type,
            })
        }

        /// Deletes what was written (best effort).
        pub async fn abandon(self) {
            if let Ok(store) = self.contents.store() {
                let _ = store.delete_content(&self.contents.tenant, self.id).await;
            }
        }

        async fn flush(&mut self) -> Result<(), ContentError> {
            let store = self.contents.store()?;
            let stored = store
                .put_chunk(&self.contents.tenant, self.id, self.seq, &self.chunk)
                .await;
            if let Err(err) = stored {
                let _ = store.delete_content(&self.contents.tenant, self.id).await;
                return Err(err.into());
            }
            self.hasher.update(&self.chunk);
            self.size += self.chunk.len() as u64;
            self.seq += 1;
            self.chunk.clear();
            Ok(())
        }
    }

    /// Items written one at a time into new content as JSON lines
    /// (`application/x-ndjson`), for a node whose output is too large to
    /// hold: it emits one item with the reference, and the node after reads
    /// the items back one at a time ([`ItemReader`]). The writer holds at
    /// most a chunk; each full chunk waits for the store, so a producer
    /// faster than the store waits instead of growing memory.
    #[derive(Debug)]
    pub struct ItemWriter {
        writer: ContentWriter,
        line: Vec<u8>,
        count: u64,
    }

    impl ItemWriter {
        /// Writes to new content of `contents`.
        pub fn new(contents: &Contents) -> Self {
            Self {
                writer: contents.writer(Some(ITEMS_MEDIA_TYPE.into())),
                line: Vec::new(),
                count: 0,
            }
        }

        /// Appends `item`.
        pub async fn push(&mut self, item: &crate::Item) -> Result<(), ContentError> {
            self.line.clear();
            // Serializing a map of JSON values cannot fail.
            serde_json::to_writer(&mut self.line, item).map_err(std::io::Error::other)?;
            self.line.push(b'\n');
            self.count += 1;
            self.writer.write(&self.line).await
        }

        /// How many items were pushed.
        pub fn count(&self) -> u64 {
            self.count
        }

        /// Stores what is left; the reference of the items.
        pub async fn finish(self) -> Result<ContentRef, ContentError> {
            self.writer.finish().await
        }
    }

    /// Reads the items an [`ItemWriter`] wrote, one at a time, holding at
    /// most a chunk and the item being read.
    #[derive(Debug)]
    pub struct ItemReader {
        reader: ContentReader,
        buffer: Vec<u8>,
        start: usize,
    }

    impl ItemReader {
        /// Reads the items of `content`.
        pub fn new(contents: &Contents, content: &ContentRef) -> Self {
            Self {
                reader: contents.read(content),
                buffer: Vec::new(),
                start: 0,
            }
        }

        /// The next item, `None` after the last.
        pub async fn next(&mut self) -> Result<Option<crate::Item>, ContentError> {
            loop {
                if let Some(end) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
                    let line = &self.buffer[self.start..self.start + end];
                    self.start += end + 1;
                    let item =
                        serde_json::from_slice(line).map_err(|err| ContentError::Damaged {
                            id: self.reader.content.id,
                            reason: format!("not a JSON lines item: {err}"),
                        })?;
                    return Ok(Some(item));
                }
                // Keep only the unread part before reading on.
                self.buffer.drain(..self.start);
                self.start = 0;
                match self.reader.next_chunk().await? {
                    Some(chunk) => self.buffer.extend_from_slice(&chunk),
                    None if self.buffer.is_empty() => return Ok(None),
                    None => {
                        return Err(ContentError::Damaged {
                            id: self.reader.content.id,
                            reason: "the last item is cut off".into(),
                        })
                    }
                }
            }
        }
    }

    /// Reads content a chunk at a time; at its end, checks the size and
    /// SHA-256 the reference gave.
    #[derive(Debug)]
    pub struct ContentReader {
        contents: Contents,
        content: ContentRef,
        seq: u32,
        read: u64,
        /// `None` once the end was reached and checked.
        hasher: Option<Sha256>,
    }

    impl ContentReader {
        /// The next chunk, `None` at the end. [`ContentError::Damaged`] when
        /// the stored content is shorter, longer or other than referenced.
        pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ContentError> {
            let Some(hasher) = self.hasher.as_mut() else {
                return Ok(None);
            };
            let id = self.content.id;
            let damaged = |reason: String| ContentError::Damaged { id, reason };
            let chunk = if self.read < self.content.size || self.seq == 0 {
                self.contents
                    .store()?
                    .chunk(&self.contents.tenant, id, self.seq)
                    .await?
            } else {
                None
            };
            match chunk {
                Some(chunk) if !chunk.is_empty() => {
                    self.seq += 1;
                    self.read += chunk.len() as u64;
                    if self.read > self.content.size {
                        return Err(damaged(format!(
                            "more than the {} bytes referenced",
                            self.content.size
                        )));
                    }
                    hasher.update(&chunk);
                    Ok(Some(chunk))
                }
                _ => {
                    if self.read != self.content.size {
                        return Err(damaged(format!(
                            "{} of {} bytes stored",
                            self.read, self.content.size
                        )));
                    }
                    let digest = self.hasher.take().map(|h| hex::encode(h.finalize()));
                    if digest.as_deref() != Some(self.content.sha256.as_str()) {
                        return Err(damaged("its SHA-256 differs from the reference".into()));
                    }
                    Ok(None)
                }
            }
        }

        /// The rest of the content as a stream of chunks.
        pub fn into_stream(
            self,
        ) -> impl futures_util::Stream<Item = Result<Vec<u8>, ContentError>> + Send {
            futures_util::stream::try_unfold(self, |mut reader| async move {
                Ok(reader.next_chunk().await?.map(|chunk| (chunk, reader)))
            })
        }
    }
}

#[cfg(all(test, feature = "runtime"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        content::{ContentError, Contents},
        InMemoryStore,
    };

    fn contents() -> Contents {
        Contents::new(Arc::new(InMemoryStore::new()), "acme".into())
    }

    #[tokio::test]
    async fn content_streams_in_and_out_a_chunk_at_a_time() {
        let contents = contents();
        let bytes: Vec<u8> = (0..CHUNK_SIZE * 5 / 2).map(|i| (i % 251) as u8).collect();
        let file = contents
            .put(&bytes[..], Some("application/octet-stream".into()))
            .await
            .unwrap();
        assert_eq!(file.size, bytes.len() as u64);
        let mut reader = contents.read(&file);
        let mut back = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            assert!(chunk.len() <= CHUNK_SIZE);
            back.extend(chunk);
        }
        assert!(back == bytes, "the content reads back as written");
        let exact = contents
            .put_bytes(&bytes[..CHUNK_SIZE], None)
            .await
            .unwrap();
        let mut reader = contents.read(&exact);
        assert_eq!(
            reader.next_chunk().await.unwrap().map(|c| c.len()),
            Some(CHUNK_SIZE)
        );
        assert!(reader.next_chunk().await.unwrap().is_none());
        let empty = contents.put_bytes(b"", None).await.unwrap();
        assert!(contents.read(&empty).next_chunk().await.unwrap().is_none());

        let value = file.to_value();
        assert_eq!(ContentRef::from_value(&value), Some(file.clone()));
        assert_eq!(
            ContentRef::from_value(&serde_json::json!({"$content": 1})),
            None
        );
    }

    #[tokio::test]
    async fn items_go_in_and_come_out_one_at_a_time_and_a_cut_off_one_is_reported() {
        let contents = contents();
        let mut writer = crate::content::ItemWriter::new(&contents);
        for n in 0..3 {
            let mut item = crate::Item::new();
            item.insert("n".into(), serde_json::json!(n));
            item.insert("text".into(), serde_json::json!("a\nb"));
            writer.push(&item).await.unwrap();
        }
        let items = writer.finish().await.unwrap();
        let mut reader = crate::content::ItemReader::new(&contents, &items);
        for n in 0..3 {
            let item = reader.next().await.unwrap().unwrap();
            assert_eq!(
                (item["n"].as_i64(), item["text"].as_str()),
                (Some(n), Some("a\nb"))
            );
        }
        assert!(reader.next().await.unwrap().is_none());

        let cut = contents
            .put_bytes(b"{\"n\":1}\n{\"n\"", None)
            .await
            .unwrap();
        let mut reader = crate::content::ItemReader::new(&contents, &cut);
        assert!(reader.next().await.unwrap().is_some());
        let err = reader.next().await.unwrap_err();
        assert!(err.to_string().contains("cut off"), "{err}");
    }

    #[tokio::test]
    async fn damaged_or_deleted_content_is_reported_not_returned_whole() {
        let contents = contents();
        let file = contents
            .put_bytes(&[7u8; 3 * CHUNK_SIZE / 2], None)
            .await
            .unwrap();
        for (forged, says) in [
            (
                ContentRef {
                    sha256: "0".repeat(64),
                    ..file.clone()
                },
                "SHA-256",
            ),
            (
                ContentRef {
                    size: file.size + 1,
                    ..file.clone()
                },
                "of",
            ),
            (
                ContentRef {
                    size: file.size - 1,
                    ..file.clone()
                },
                "more than",
            ),
        ] {
            let mut reader = contents.read(&forged);
            let err = loop {
                match reader.next_chunk().await {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{forged:?} read to the end"),
                    Err(err) => break err,
                }
            };
            assert!(
                matches!(err, ContentError::Damaged { .. }) && err.to_string().contains(says),
                "{err}"
            );
        }
        contents.delete(&file).await.unwrap();
        assert!(
            contents.read(&file).next_chunk().await.is_err(),
            "deleted content is gone"
        );
    }
}
