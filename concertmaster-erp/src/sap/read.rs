//! Reads: a page of an entity set (following the server's next links on
//! the configured origin, else by `$skip`), and finding a record by its
//! fields (`matchOn`).

use super::*;

/// Where the next page of a read starts: the offset of the current client
/// page, how many of it were served, and the server's link within it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    skip: u64,
    served: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

impl SapConnector {
    pub(super) async fn find_record(
        &self,
        entity: &str,
        key: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<Written>, ConnectorError> {
        let span = tracing::debug_span!("sap.find", connection = %self.connection, entity);
        async {
            let filter =
                odata::equality_filter(fields).map_err(|message| ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: format!("matchOn: {message}"),
                })?;
            let mut url = self.entity_url(entity, None)?;
            let mut pairs = vec![("$top", "1".to_string()), ("$filter", filter)];
            if self.config.version == ODataVersion::V2 {
                pairs.push(("$format", "json".into()));
            }
            url.set_query(Some(&odata::query(&pairs)));
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                // Full metadata names each entity's URL (@odata.id), which
                // holds its key; V2 names it in __metadata.uri anyway.
                headers: vec![("Accept", "application/json;odata.metadata=full".into())],
                body: None,
            };
            let (status, _, body) = self.exchange(&call).await?;
            if !status.is_success() {
                return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
            }
            let (records, _) = odata::collection(self.config.version, self.json_body(&url, &body)?)
                .map_err(|message| self.protocol(&url, message))?;
            Ok(records.into_iter().next().map(|found| {
                let id = odata::entity_url_of(&found)
                    .and_then(odata::key_of_location)
                    .unwrap_or_else(|| key.to_string());
                Written {
                    key: key.to_string(),
                    id,
                    created: false,
                    etag: odata::etag_of(&found),
                }
            }))
        }
        .instrument(span)
        .await
    }

    pub(super) async fn read_page(
        &self,
        entity: &str,
        query: &ReadQuery,
        next: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let span = tracing::debug_span!("sap.read", connection = %self.connection, entity);
        async {
            let page_size = u64::from(query.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1));
            let cursor = match next {
                None => Cursor {
                    skip: 0,
                    served: 0,
                    link: None,
                },
                Some(text) => serde_json::from_str(text).map_err(|_| ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: "the page cursor is not one this connector handed out".into(),
                })?,
            };
            let url = match &cursor.link {
                Some(link) => self.follow(link)?,
                None => {
                    let mut url = self.entity_url(entity, None)?;
                    let mut pairs = vec![("$top", page_size.to_string())];
                    if cursor.skip > 0 {
                        pairs.push(("$skip", cursor.skip.to_string()));
                    }
                    if let Some(filter) = &query.filter {
                        pairs.push(("$filter", filter.clone()));
                    }
                    if !query.select.is_empty() {
                        pairs.push(("$select", query.select.join(",")));
                    }
                    if self.config.version == ODataVersion::V2 {
                        pairs.push(("$format", "json".into()));
                    }
                    url.set_query(Some(&odata::query(&pairs)));
                    url
                }
            };
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                headers: Vec::new(),
                body: None,
            };
            let (status, _, body) = self.exchange(&call).await?;
            if !status.is_success() {
                return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
            }
            let (records, link) =
                odata::collection(self.config.version, self.json_body(&url, &body)?)
                    .map_err(|message| self.protocol(&url, message))?;
            let served = cursor.served + records.len() as u64;
            let next = if link.is_some() {
                Some(Cursor {
                    skip: cursor.skip,
                    served,
                    link,
                })
            } else if served >= page_size {
                Some(Cursor {
                    skip: cursor.skip + served,
                    served: 0,
                    link: None,
                })
            } else {
                None
            };
            let next = next
                .map(|c| serde_json::to_string(&c))
                .transpose()
                .map_err(|err| self.protocol(&url, err.to_string()))?;
            Ok(Page { records, next })
        }
        .instrument(span)
        .await
    }

    /// The URL of a server's next link, on this service's own origin: a
    /// link naming another host (a proxy's internal name) is followed on
    /// the configured one, so credentials go nowhere else.
    fn follow(&self, link: &str) -> Result<Url, ConnectorError> {
        let mut url = self.root.join(link).map_err(|err| {
            self.protocol(
                &self.root,
                format!("the next link {link:?} is not a URL: {err}"),
            )
        })?;
        if url.origin() != self.root.origin() {
            let mut rebased = self.root.clone();
            rebased.set_path(url.path());
            rebased.set_query(url.query());
            url = rebased;
        }
        Ok(url)
    }
}
