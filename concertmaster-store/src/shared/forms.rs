//! `FormStore` on the shared SQL code: forms, links, drafts, responses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    form::{
        Consent, FormDraft, FormId, FormLink, FormResponse, FormSchema, PreparedResponse,
        ResponseFilter, ResponseId, Review, ReviewStatus, Submitter,
    },
    run::Wait,
    store::{FormStore, HeldWakeup, StoreError, StoreResult, WakeFor},
    NodeId, RunId, TenantId,
};
use sqlx::types::Json;
use sqlx::Row;

use super::{read_ts, read_ts_opt, ts, ts_opt, Db, This, BEGIN};
use crate::codec::{limit, parse_name, to_i32, to_u32};
use crate::error::store_error;
use crate::sql_store::sql;

type DbRow = <Db as sqlx::Database>::Row;

fn form_from_row(row: &DbRow) -> Result<FormSchema, sqlx::Error> {
    Ok(FormSchema {
        id: FormId::new(row.try_get::<String, _>("id")?),
        version: to_u32("version", row.try_get("version")?)?,
        title: row.try_get("name")?,
        schema: row.try_get::<Json<serde_json::Value>, _>("json_schema")?.0,
        ui_schema: row.try_get::<Json<serde_json::Value>, _>("ui_schema")?.0,
        retention_days: row
            .try_get::<Option<i32>, _>("retention_days")?
            .map(|d| to_u32("retention_days", d))
            .transpose()?,
    })
}

fn link_from_row(row: &DbRow) -> Result<FormLink, sqlx::Error> {
    Ok(FormLink {
        token_hash: row.try_get("token_hash")?,
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        form_id: FormId::new(row.try_get::<String, _>("form_id")?),
        form_version: to_u32("form_version", row.try_get("form_version")?)?,
        run_id: row
            .try_get::<Option<uuid::Uuid>, _>("run_id")?
            .map(RunId::from_uuid),
        node_id: row
            .try_get::<Option<String>, _>("node_id")?
            .map(NodeId::new),
        wait_key: row.try_get("wait_key")?,
        respondent: row.try_get("respondent")?,
        created_at: read_ts(row, "created_at")?,
        expires_at: read_ts(row, "expires_at")?,
        used_at: read_ts_opt(row, "used_at")?,
    })
}

fn response_from_row(row: &DbRow) -> Result<FormResponse, sqlx::Error> {
    let review_status: ReviewStatus = parse_name("review_status", row.try_get("review_status")?)?;
    let review = match (
        row.try_get::<Option<String>, _>("reviewed_by")?,
        read_ts_opt(row, "reviewed_at")?,
    ) {
        (Some(reviewer), Some(at)) => Some(Review {
            status: review_status,
            reviewer,
            comment: row.try_get("review_comment")?,
            at,
        }),
        _ => None,
    };
    Ok(FormResponse {
        id: ResponseId::from_uuid(row.try_get("id")?),
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        form_id: FormId::new(row.try_get::<String, _>("form_id")?),
        form_version: to_u32("form_version", row.try_get("form_version")?)?,
        run_id: row
            .try_get::<Option<uuid::Uuid>, _>("run_id")?
            .map(RunId::from_uuid),
        node_id: row
            .try_get::<Option<String>, _>("node_id")?
            .map(NodeId::new),
        respondent: row.try_get("respondent")?,
        data: row.try_get::<Json<serde_json::Value>, _>("data")?.0,
        consent: row.try_get::<Json<Option<Consent>>, _>("consent")?.0,
        submitter: row.try_get::<Json<Submitter>, _>("submitter")?.0,
        submitted_at: read_ts(row, "submitted_at")?,
        review_status,
        review,
        erased_at: read_ts_opt(row, "erased_at")?,
    })
}

/// Why link `hash` could not be used by `response`: as the
/// in-memory store says it, after reading the link back.
/// Uses the link (when given) and stores `response` on `conn`,
/// a transaction: the store's own or a host's.
async fn insert_response_on(
    conn: &mut <Db as sqlx::Database>::Connection,
    response: &FormResponse,
    link: Option<&str>,
) -> StoreResult<()> {
    let fail = |err| store_error(err, "form response", response.id);
    if let Some(hash) = link {
        let used = sqlx::query(sql!("link/use"))
            .bind(hash)
            .bind(response.tenant.as_str())
            .bind(ts(response.submitted_at))
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
        if used.rows_affected() == 0 {
            return Err(refused_link(&mut *conn, hash, &response.tenant).await);
        }
        sqlx::query(sql!("draft/delete"))
            .bind(hash)
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
    }
    let inserted = sqlx::query(sql!("response/insert"))
        .bind(response.id.as_uuid())
        .bind(response.tenant.as_str())
        .bind(response.form_id.as_str())
        .bind(to_i32(response.form_version)?)
        .bind(response.run_id.map(|r| r.as_uuid()))
        .bind(response.node_id.as_ref().map(|n| n.as_str()))
        .bind(response.respondent.as_deref())
        .bind(Json(&response.data))
        .bind(Json(&response.consent))
        .bind(Json(&response.submitter))
        .bind(response.review_status.as_str())
        .bind(ts(response.submitted_at))
        .execute(&mut *conn)
        .await;
    if let Err(err) = inserted {
        return Err(match store_error(err, "form response", response.id) {
            StoreError::Conflict { entity, id, .. } => StoreError::Conflict {
                entity,
                id,
                message: "a response with this id exists".into(),
            },
            other => other,
        });
    }
    Ok(())
}

impl This {
    /// Stores `prepared` (a checked submission from
    /// `Forms::prepare_submission`: the response, the link it
    /// uses up, its audit entry) on `conn`. Given the host's own
    /// transaction (`&mut *tx`), the answer commits or rolls back
    /// with the host's writes; once it committed,
    /// `Forms::delivered` wakes the node waiting for it. A link
    /// used meanwhile is a `Conflict`, an expired one `NotFound`,
    /// as for `insert_response`.
    pub async fn insert_response_in(
        &self,
        conn: &mut <Db as sqlx::Database>::Connection,
        prepared: &PreparedResponse,
    ) -> StoreResult<()> {
        insert_response_on(&mut *conn, prepared.response(), prepared.link_hash()).await?;
        if let Some(wakeup) = prepared.wakeup() {
            super::deliver_on(&mut *conn, &prepared.response().tenant, wakeup).await?;
        }
        super::insert_one_audit(&mut *conn, prepared.audit()).await
    }
}

async fn refused_link<'c, E>(executor: E, hash: &str, tenant: &TenantId) -> StoreError
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let found = sqlx::query(sql!("link/get"))
        .bind(hash)
        .fetch_optional(executor)
        .await;
    match found.map(|row| row.map(|row| link_from_row(&row)).transpose()) {
        Ok(Ok(Some(link))) if link.tenant == *tenant => {
            if link.used_at.is_some() {
                StoreError::link_refused("the link has been used already")
            } else {
                StoreError::link_refused("the link has expired")
            }
        }
        Ok(Ok(_)) => StoreError::NotFound {
            entity: "form link",
            id: "(token)".into(),
        },
        Ok(Err(err)) | Err(err) => store_error(err, "form link", "(token)"),
    }
}

#[async_trait]
impl FormStore for This {
    async fn insert_form(&self, tenant: &TenantId, form: &FormSchema) -> StoreResult<()> {
        let id = format!("{}@{}", form.id, form.version);
        let result = sqlx::query(sql!("form/insert"))
            .bind(tenant.as_str())
            .bind(form.id.as_str())
            .bind(to_i32(form.version)?)
            .bind(form.title.as_str())
            .bind(Json(&form.schema))
            .bind(Json(&form.ui_schema))
            .bind(Json(form.pii_fields()))
            .bind(form.retention_days.map(to_i32).transpose()?)
            .bind(ts(Utc::now()))
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match store_error(err, "form", &id) {
                StoreError::Conflict { .. } => Err(StoreError::version_exists(
                    "form",
                    &form.id,
                    form.version,
                    "store a new version",
                )),
                other => Err(other),
            },
        }
    }

    async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> StoreResult<Option<FormSchema>> {
        sqlx::query(sql!("form/get"))
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(version.map(to_i32).transpose()?)
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.map(|row| form_from_row(&row)).transpose())
            .map_err(|err| store_error(err, "form", id))
    }

    async fn insert_link(&self, link: &FormLink) -> StoreResult<()> {
        let result = sqlx::query(sql!("link/insert"))
            .bind(link.token_hash.as_str())
            .bind(link.tenant.as_str())
            .bind(link.form_id.as_str())
            .bind(to_i32(link.form_version)?)
            .bind(link.run_id.map(|r| r.as_uuid()))
            .bind(link.node_id.as_ref().map(|n| n.as_str()))
            .bind(link.wait_key.as_deref())
            .bind(link.respondent.as_deref())
            .bind(ts(link.created_at))
            .bind(ts(link.expires_at))
            .bind(ts_opt(link.used_at))
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match store_error(err, "form link", "(token)") {
                StoreError::Conflict { .. } => {
                    Err(StoreError::link_refused("a link with this token exists"))
                }
                other => Err(other),
            },
        }
    }

    async fn link(&self, token_hash: &str) -> StoreResult<Option<FormLink>> {
        sqlx::query(sql!("link/get"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.map(|row| link_from_row(&row)).transpose())
            .map_err(|err| store_error(err, "form link", "(token)"))
    }

    async fn insert_response(
        &self,
        response: &FormResponse,
        link: Option<&str>,
        wake: Option<&HeldWakeup>,
    ) -> StoreResult<Option<Wait>> {
        let fail = |err| store_error(err, "form response", response.id);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
        insert_response_on(&mut tx, response, link).await?;
        let woke = match wake {
            Some(wakeup) => super::deliver_on(&mut tx, &response.tenant, wakeup).await?,
            None => None,
        };
        tx.commit().await.map_err(fail)?;
        Ok(woke)
    }

    async fn save_draft(&self, draft: &FormDraft) -> StoreResult<()> {
        let fail = |err| store_error(err, "form draft", "(token)");
        let saved = sqlx::query(sql!("draft/save"))
            .bind(draft.token_hash.as_str())
            .bind(draft.tenant.as_str())
            .bind(Json(&draft.data))
            .bind(ts(draft.saved_at))
            .execute(&self.pool)
            .await
            .map_err(fail)?;
        if saved.rows_affected() == 0 {
            return Err(refused_link(&self.pool, &draft.token_hash, &draft.tenant).await);
        }
        Ok(())
    }

    async fn draft(&self, token_hash: &str) -> StoreResult<Option<FormDraft>> {
        let row = sqlx::query(sql!("draft/get"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| store_error(err, "form draft", "(token)"))?;
        row.map(|row| -> Result<FormDraft, sqlx::Error> {
            Ok(FormDraft {
                token_hash: row.try_get("token_hash")?,
                tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
                data: row.try_get::<Json<serde_json::Value>, _>("data")?.0,
                saved_at: read_ts(&row, "saved_at")?,
            })
        })
        .transpose()
        .map_err(|err| store_error(err, "form draft", "(token)"))
    }

    async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
    ) -> StoreResult<Vec<FormResponse>> {
        sqlx::query(sql!("response/list"))
            .bind(tenant.as_str())
            .bind(filter.form_id.as_ref().map(|f| f.as_str()))
            .bind(filter.run_id.map(|r| r.as_uuid()))
            .bind(filter.node_id.as_ref().map(|n| n.as_str()))
            .bind(filter.review_status.map(ReviewStatus::as_str))
            .bind(filter.respondent.as_deref())
            .bind(ts_opt(filter.submitted_before))
            .bind(limit(filter.effective_limit()))
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(response_from_row).collect())
            .map_err(|err| store_error(err, "form responses of tenant", tenant))
    }

    async fn review_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        review: &Review,
        wake: &WakeFor,
    ) -> StoreResult<(FormResponse, Option<Wait>)> {
        let fail = |err| store_error(err, "form response", id);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
        let decided = sqlx::query(sql!("response/review"))
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .bind(review.status.as_str())
            .bind(review.reviewer.as_str())
            .bind(review.comment.as_deref())
            .bind(ts(review.at))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let row = sqlx::query(sql!("response/get"))
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
        let Some(row) = row else {
            return Err(StoreError::response_not_found(id));
        };
        if decided.rows_affected() == 0 {
            return Err(StoreError::already_reviewed(id));
        }
        let response = response_from_row(&row).map_err(fail)?;
        let woke = match wake(&response) {
            Some(wakeup) => super::deliver_on(&mut tx, tenant, &wakeup).await?,
            None => None,
        };
        tx.commit().await.map_err(fail)?;
        Ok((response, woke))
    }

    async fn erase_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let erased = sqlx::query(sql!("response/erase"))
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .bind(Json(data))
            .bind(Json(Submitter::default()))
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .map_err(|err| store_error(err, "form response", id))?;
        if erased.rows_affected() == 0 {
            return Err(StoreError::response_not_found(id));
        }
        Ok(())
    }

    async fn delete_responses(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let fail = |err| store_error(err, "form responses of form", form_id);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
        let deleted = sqlx::query(sql!("response/delete_before"))
            .bind(tenant.as_str())
            .bind(form_id.as_str())
            .bind(ts(before))
            .execute(&mut *tx)
            .await
            .map_err(fail)?
            .rows_affected();
        sqlx::query(sql!("draft/delete_before"))
            .bind(tenant.as_str())
            .bind(form_id.as_str())
            .bind(ts(before))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(deleted)
    }
}
