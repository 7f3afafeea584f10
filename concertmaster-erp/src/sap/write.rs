//! Writes: creates one by one or in `$batch` changesets, updates with `If-
//! Match`, upserts by key.

use super::*;

impl SapConnector {
    pub(super) fn record_failure(
        &self,
        record: &Record,
        error: ErpMessage,
        entity: &str,
    ) -> RecordFailure {
        let error = if error.status == Some(412) {
            self.conflict(entity, record)
        } else {
            self.err_erp(error)
        };
        RecordFailure {
            key: record.key.clone(),
            error,
        }
    }

    pub(super) fn conflict(&self, entity: &str, record: &Record) -> ConnectorError {
        ConnectorError::Conflict {
            connection: self.connection.clone(),
            entity: entity.into(),
            id: record
                .external_id
                .clone()
                .unwrap_or_else(|| record.key.clone()),
            expected: record.etag.clone().unwrap_or_else(|| "*".into()),
        }
    }

    pub(super) fn body_of(&self, record: &Record) -> Result<String, ConnectorError> {
        serde_json::to_string(&record.fields).map_err(|err| ConnectorError::Config {
            connection: self.connection.clone(),
            message: format!("record {} cannot be sent as JSON: {err}", record.key),
        })
    }

    pub(super) fn written(
        &self,
        record: &Record,
        created: bool,
        headers: &[(String, String)],
        body: &Value,
        location_key: Option<String>,
    ) -> Written {
        let entity = odata::entity(self.config.version, body.clone());
        let etag = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
            .map(|(_, v)| v.clone())
            .or_else(|| odata::etag_of(&entity));
        Written {
            key: record.key.clone(),
            id: location_key
                .or_else(|| record.external_id.clone())
                .unwrap_or_else(|| record.key.clone()),
            created,
            etag,
        }
    }

    /// Creates `records` in `$batch` requests of `batchSize`.
    pub(super) async fn create_all(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(self.config.batch_size) {
            if chunk.len() == 1 {
                outcomes.push(self.create_one(entity, &chunk[0]).await?);
            } else {
                outcomes.extend(self.create_batch(entity, chunk).await?);
            }
        }
        Ok(outcomes)
    }

    pub(super) async fn create_one(
        &self,
        entity: &str,
        record: &Record,
    ) -> Result<RecordOutcome, ConnectorError> {
        let url = self.entity_url(entity, None)?;
        let call = Call {
            method: Method::POST,
            url: url.clone(),
            headers: Vec::new(),
            body: Some((
                "application/json".into(),
                self.body_of(record)?.into_bytes(),
            )),
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            return Ok(Err(self.record_failure(
                record,
                odata::error_message(status.as_u16(), &body),
                entity,
            )));
        }
        let headers = header_pairs(&headers);
        let location = find(&headers, LOCATION.as_str()).and_then(odata::key_of_location);
        let body = self.json_body(&url, &body)?;
        Ok(Ok(self.written(record, true, &headers, &body, location)))
    }

    /// Creates `records` in one `$batch`. A service that stops at the
    /// first refused changeset (OData V4 without continue-on-error, the V2
    /// adapter) answers for fewer records; the rest are sent again in a
    /// new batch, as they were not processed.
    pub(super) async fn create_batch(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let mut outcomes = Vec::with_capacity(records.len());
        while outcomes.len() < records.len() {
            let rest = &records[outcomes.len()..];
            let answers = self.batch_answers(entity, rest).await?;
            if answers.is_empty() {
                outcomes.extend(rest.iter().map(|record| {
                    Err(RecordFailure {
                        key: record.key.clone(),
                        error: ConnectorError::NotProcessed {
                            connection: self.connection.clone(),
                            message: format!(
                                "the $batch answered none of its {} records; record {} was not processed",
                                rest.len(),
                                record.key
                            ),
                        },
                    })
                }));
                break;
            }
            for (record, answer) in rest.iter().zip(answers) {
                outcomes.push(if (200..300).contains(&answer.status) {
                    let location = answer.header("location").and_then(odata::key_of_location);
                    let body = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
                    Ok(self.written(record, true, &answer.headers, &body, location))
                } else {
                    Err(self.record_failure(
                        record,
                        odata::error_message(answer.status, answer.body.as_bytes()),
                        entity,
                    ))
                });
            }
        }
        Ok(outcomes)
    }

    /// Sends one `$batch` creating `records`; the answers, in order.
    pub(super) async fn batch_answers(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<batch::Answer>, ConnectorError> {
        let creates = records
            .iter()
            .map(|record| {
                Ok(batch::Create {
                    entity,
                    body: self.body_of(record)?,
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        self.entity_url(entity, None)?;
        let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
        let url = self
            .root
            .join("$batch")
            .map_err(|err| self.protocol(&self.root, err.to_string()))?;
        let mut headers = vec![("Accept", "multipart/mixed".to_string())];
        if self.config.version == ODataVersion::V4 {
            // Without it a V4 service may stop at the first failed changeset.
            headers.push(("Prefer", "odata.continue-on-error".to_string()));
        }
        let call = Call {
            method: Method::POST,
            url: url.clone(),
            headers,
            body: Some((
                format!("multipart/mixed; boundary={boundary}"),
                batch::request(&boundary, &creates).into_bytes(),
            )),
        };
        let (status, response_headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let response_type = response_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let answers = batch::response(response_type, &text)
            .map_err(|message| self.protocol(&url, message))?;
        if answers.len() > records.len() {
            return Err(self.protocol(
                &url,
                format!(
                    "the $batch answered {} times for {} records",
                    answers.len(),
                    records.len()
                ),
            ));
        }
        Ok(answers)
    }

    /// Changes the record with `record.external_id`, expecting `etag`
    /// (`*` for any version).
    pub(super) async fn update_one(
        &self,
        entity: &str,
        record: &Record,
        etag: &str,
    ) -> Result<RecordOutcome, ConnectorError> {
        let Some(id) = record.external_id.as_deref() else {
            return Ok(Err(RecordFailure {
                key: record.key.clone(),
                error: ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: format!(
                        "record {} has no external id; update and upsert find records by it",
                        record.key
                    ),
                },
            }));
        };
        let url = self.entity_url(entity, Some(id))?;
        let method = match self.config.version {
            ODataVersion::V4 => Method::PATCH,
            // Gateway's partial update in V2.
            ODataVersion::V2 => Method::from_bytes(b"MERGE").unwrap_or(Method::PATCH),
        };
        let call = Call {
            method,
            url: url.clone(),
            headers: vec![(IF_MATCH.as_str(), etag.to_string())],
            body: Some((
                "application/json".into(),
                self.body_of(record)?.into_bytes(),
            )),
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            let expecting = Record {
                etag: Some(etag.to_string()),
                ..record.clone()
            };
            return Ok(Err(self.record_failure(
                &expecting,
                odata::error_message(status.as_u16(), &body),
                entity,
            )));
        }
        let headers = header_pairs(&headers);
        let body = self.json_body(&url, &body)?;
        Ok(Ok(self.written(
            record,
            false,
            &headers,
            &body,
            Some(id.to_string()),
        )))
    }

    /// The current ETag of `id`, or `None` when there is no such record.
    pub(super) async fn current_etag(
        &self,
        entity: &str,
        id: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let url = self.entity_url(entity, Some(id))?;
        let call = Call {
            method: Method::GET,
            url: url.clone(),
            headers: Vec::new(),
            body: None,
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let entity = odata::entity(self.config.version, self.json_body(&url, &body)?);
        Ok(Some(
            headers
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| odata::etag_of(&entity))
                .unwrap_or_else(|| "*".into()),
        ))
    }

    /// Reads the record's version and updates it, or creates it when it is
    /// not there. A version changed or a record created in between is
    /// met by one more round.
    pub(super) async fn upsert_one(
        &self,
        entity: &str,
        record: &Record,
    ) -> Result<RecordOutcome, ConnectorError> {
        let Some(id) = record.external_id.as_deref() else {
            return self.update_one(entity, record, "*").await;
        };
        let mut outcome = Ok(Err(RecordFailure {
            key: record.key.clone(),
            error: self.conflict(entity, record),
        }));
        for _round in 0..2 {
            outcome = match self.current_etag(entity, id).await? {
                Some(etag) => self.update_one(entity, record, &etag).await,
                None => self.create_one(entity, record).await,
            };
            match &outcome {
                Ok(Err(failure)) if matches!(failure.error, ConnectorError::Conflict { .. }) => {
                    continue
                }
                Ok(Err(failure))
                    if failure
                        .error
                        .erp_message()
                        .is_some_and(|m| m.status == Some(409)) =>
                {
                    continue
                }
                _ => break,
            }
        }
        outcome
    }
}
