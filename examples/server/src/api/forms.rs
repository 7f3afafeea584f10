//! Forms, their responses (personal fields masked by role) and reviews.

use super::*;

#[utoipa::path(post, path = "/api/forms", tag = "forms", request_body = doc::FormDocument, responses((status = 201, description = "Published as the next version", body = doc::FormDocument)), security(("api_key" = [])))]
pub(super) async fn publish_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(form): Json<FormSchema>,
) -> ApiResult<(StatusCode, Json<FormSchema>)> {
    caller.require(Action::Design, "publish forms")?;
    let form = state.forms.publish(&caller.tenant, form).await?;
    Ok((StatusCode::CREATED, Json(form)))
}

#[utoipa::path(get, path = "/api/forms/{id}", tag = "forms", params(("id" = String, Path, description = "Form id"), ("version" = Option<u32>, Query, description = "A version; the latest when absent")), responses((status = 200, description = "The form schema", body = doc::FormDocument)), security(("api_key" = [])))]
pub(super) async fn get_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<VersionQuery>,
) -> ApiResult<Json<FormSchema>> {
    caller.require(Action::Read, "read forms")?;
    Ok(Json(
        state
            .forms
            .form(&caller.tenant, &FormId::from(id.as_str()), query.version)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ResponseQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// A response as `caller` may see it: personal fields masked unless the
/// role may read personal data.
fn shown(response: FormResponse, form: Option<&FormSchema>, caller: &Caller) -> Value {
    let mut value = serde_json::to_value(&response).unwrap_or(Value::Null);
    if !caller.role.allows(Action::ReadPersonalData) {
        // Without its form nothing says which fields are personal: all are.
        let Some(form) = form else {
            value["data"] = json!("***");
            return value;
        };
        for field in form.pii_fields() {
            // A field may name the roles that see it anyway:
            // `"x-pii-readers": ["reviewer"]` for the data they judge by.
            if !readers(&form.schema, &field.pointer).contains(&caller.role.as_str()) {
                mask(&mut value["data"], &field.pointer);
            }
        }
    }
    value
}

/// The roles a personal field's schema lets read it unmasked.
fn readers<'a>(schema: &'a Value, pointer: &str) -> Vec<&'a str> {
    let mut at = schema;
    for token in pointer.split('/').skip(1) {
        let next = if token == "*" {
            at.get("items")
        } else {
            at.get("properties")
                .and_then(|p| p.get(token.replace("~1", "/").replace("~0", "~")))
        };
        match next {
            Some(next) => at = next,
            None => return Vec::new(),
        }
    }
    at.get("x-pii-readers")
        .and_then(Value::as_array)
        .map(|roles| roles.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Replaces the value at `pointer` (`*` for every element) with `"***"`.
fn mask(value: &mut Value, pointer: &str) {
    fn walk(value: &mut Value, tokens: &[&str]) {
        let Some((first, rest)) = tokens.split_first() else {
            if !value.is_null() {
                *value = json!("***");
            }
            return;
        };
        match (value, *first) {
            (Value::Array(items), "*") => items.iter_mut().for_each(|v| walk(v, rest)),
            (Value::Object(map), key) => {
                let key = key.replace("~1", "/").replace("~0", "~");
                if let Some(v) = map.get_mut(&key) {
                    walk(v, rest);
                }
            }
            _ => {}
        }
    }
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    walk(value, &tokens);
}

#[utoipa::path(get, path = "/api/forms/{id}/responses", tag = "forms", params(("id" = String, Path, description = "Form id"), ("status" = Option<String>, Query, description = "pending, approved or rejected"), ("limit" = Option<usize>, Query, description = "At most this many")), responses((status = 200, description = "Responses; personal fields masked unless the role may read them. Reading is recorded in the audit log.", body = doc::ResponseList)), security(("api_key" = [])))]
pub(super) async fn list_responses(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(query): Query<ResponseQuery>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Read, "read form responses")?;
    let form_id = FormId::from(id.as_str());
    let mut filter = ResponseFilter::all();
    filter.form_id = Some(form_id.clone());
    if let Some(status) = &query.status {
        filter.review_status = Some(
            serde_json::from_value::<ReviewStatus>(json!(status))
                .map_err(|_| ApiError::bad_request(format!("{status:?} is not a review status")))?,
        );
    }
    filter.limit = Some(query.limit.unwrap_or(100).min(1000));
    let responses = state
        .forms
        .responses(&caller.tenant, &filter, &caller.name)
        .await?;
    // Each response is masked by the version of the form it answered.
    let mut versions: std::collections::HashMap<u32, Option<FormSchema>> =
        std::collections::HashMap::new();
    let mut shown_responses = Vec::with_capacity(responses.len());
    for response in responses {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            versions.entry(response.form_version)
        {
            let form = state
                .forms
                .form(&caller.tenant, &form_id, Some(response.form_version))
                .await
                .ok();
            slot.insert(form);
        }
        let form = versions
            .get(&response.form_version)
            .and_then(Option::as_ref);
        shown_responses.push(shown(response, form, &caller));
    }
    let responses = shown_responses;
    Ok(Json(
        json!({ "responses": responses, "personalDataMasked": !caller.role.allows(Action::ReadPersonalData) }),
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct ReviewBody {
    decision: ReviewStatus,
    comment: Option<String>,
}

#[utoipa::path(post, path = "/api/responses/{id}/review", tag = "forms", params(("id" = String, Path, description = "Response id")), request_body = doc::ReviewRequest, responses((status = 200, description = "Decided; the waiting run continues", body = doc::ReviewResult), (status = 409, description = "Decided already", body = doc::ErrorBody)), security(("api_key" = [])))]
pub(super) async fn review_response(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> ApiResult<Json<Value>> {
    caller.require(Action::Review, "review form responses")?;
    let id: ResponseId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("form response {id}")))?;
    let comment = body.comment.unwrap_or_default();
    let decision = match body.decision {
        ReviewStatus::Approved if comment.is_empty() => Decision::approve(&caller.name),
        ReviewStatus::Approved => Decision::approve(&caller.name).with_comment(comment),
        ReviewStatus::Rejected => Decision::reject(&caller.name, comment),
        _ => return Err(ApiError::bad_request("decide approved or rejected")),
    };
    let response = state
        .forms
        .review(&state.engine, &caller.tenant, id, decision)
        .await?;
    Ok(Json(
        json!({ "response": response.id, "reviewStatus": response.review_status, "review": response.review }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_personal_field_can_name_the_roles_that_read_it() {
        let schema = json!({ "type": "object", "properties": {
            "vatId": { "type": "string", "x-pii": true, "x-pii-readers": ["reviewer"] },
            "contacts": { "type": "array", "items": { "type": "object", "properties": { "phone": { "x-pii": true } } } }
        } });
        assert_eq!(readers(&schema, "/vatId"), ["reviewer"]);
        assert!(readers(&schema, "/contacts/*/phone").is_empty());
        assert!(readers(&schema, "/missing").is_empty());
    }

    #[test]
    fn masking_follows_pointers_and_array_stars() {
        let mut data =
            json!({ "name": "Ada", "contacts": [{ "phone": "1" }, { "phone": "2" }], "vat": null });
        mask(&mut data, "/name");
        mask(&mut data, "/contacts/*/phone");
        mask(&mut data, "/vat");
        mask(&mut data, "/missing");
        assert_eq!(
            data,
            json!({ "name": "***", "contacts": [{ "phone": "***" }, { "phone": "***" }], "vat": null })
        );
    }
}
