//! OData `$batch` in its multipart form (V2 and V4): each create in a
//! changeset of its own, so one refused record does not roll back the
//! others; the answers are read back in order.

use std::fmt::Write as _;

/// One request of a batch: a create of `body` in entity set `entity`.
pub(crate) struct Create<'a> {
    pub(crate) entity: &'a str,
    pub(crate) body: String,
}

/// One answer inside a batch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The body of a `$batch` request with `boundary`.
pub(crate) fn request(boundary: &str, creates: &[Create<'_>]) -> String {
    let mut out = String::new();
    for (index, create) in creates.iter().enumerate() {
        let changeset = format!("changeset_{boundary}_{index}");
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n\
             --{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\
             Content-ID: {id}\r\n\r\n\
             POST {entity} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n\r\n\
             {body}\r\n--{changeset}--\r\n",
            id = index + 1,
            entity = create.entity,
            body = create.body,
        );
    }
    let _ = write!(out, "--{boundary}--\r\n");
    out
}

/// The boundary named by a `Content-Type: multipart/mixed; boundary=...`.
pub(crate) fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The answers of a batch response, in order, changesets flattened.
pub(crate) fn response(content_type: &str, body: &str) -> Result<Vec<Answer>, String> {
    nested_response(content_type, body, 0)
}

/// A `$batch` answer holds changesets, and a changeset holds answers: two
/// levels. Deeper nesting is refused rather than followed, so that a
/// hostile answer cannot make the parser recurse until the stack ends.
const MAX_NESTING: usize = 2;

fn nested_response(content_type: &str, body: &str, depth: usize) -> Result<Vec<Answer>, String> {
    if depth >= MAX_NESTING {
        return Err(format!(
            "the $batch answer nests multipart parts deeper than {MAX_NESTING} levels"
        ));
    }
    let boundary = boundary(content_type).ok_or_else(|| {
        format!("the $batch answer is not multipart (Content-Type: {content_type})")
    })?;
    let mut answers = Vec::new();
    for part in parts(body, boundary) {
        let (headers, content) = split_head(part);
        let part_type = header(&headers, "content-type").unwrap_or_default();
        if part_type
            .to_ascii_lowercase()
            .starts_with("multipart/mixed")
        {
            answers.extend(nested_response(part_type, content, depth + 1)?);
        } else {
            answers.push(http_response(content)?);
        }
    }
    Ok(answers)
}

/// The parts between the delimiter lines of `boundary`.
fn parts<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    // Skip the preamble up to the first delimiter.
    let Some(start) = rest.find(&delimiter) else {
        return parts;
    };
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with("--") {
            break; // the close delimiter
        }
        let Some(end) = rest.find(&delimiter) else {
            break;
        };
        let part = rest[..end]
            .trim_start_matches([' ', '\t'])
            .strip_prefix("\r\n")
            .or_else(|| rest[..end].strip_prefix('\n'))
            .unwrap_or(&rest[..end]);
        parts.push(
            part.strip_suffix("\r\n")
                .or_else(|| part.strip_suffix('\n'))
                .unwrap_or(part),
        );
        rest = &rest[end + delimiter.len()..];
    }
    parts
}

/// Headers and content of a part or message, split at the first blank line.
fn split_head(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, content) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(crlf), Some(lf)) if lf < crlf => (&text[..lf], &text[lf + 2..]),
        (Some(crlf), _) => (&text[..crlf], &text[crlf + 4..]),
        (None, Some(lf)) => (&text[..lf], &text[lf + 2..]),
        (None, None) => (text, ""),
    };
    let headers = head
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect();
    (headers, content)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An `application/http` part: status line, headers, body.
fn http_response(content: &str) -> Result<Answer, String> {
    let (first, rest) = content
        .split_once('\n')
        .ok_or_else(|| "a $batch part has no HTTP status line".to_string())?;
    let status = first
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("a $batch part has no HTTP status: {:?}", first.trim()))?;
    let (headers, body) = if rest.starts_with("\r\n") || rest.starts_with('\n') {
        (Vec::new(), rest.trim_start_matches(['\r', '\n']))
    } else {
        split_head(rest)
    };
    Ok(Answer {
        status,
        headers,
        body: body.trim_end_matches(['\r', '\n']).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_puts_each_create_in_its_own_changeset() {
        let body = request(
            "b1",
            &[
                Create {
                    entity: "E",
                    body: r#"{"a":1}"#.into(),
                },
                Create {
                    entity: "E",
                    body: r#"{"a":2}"#.into(),
                },
            ],
        );
        assert_eq!(
            body.matches("Content-Type: multipart/mixed; boundary=changeset_b1_")
                .count(),
            2
        );
        assert!(body.contains("POST E HTTP/1.1\r\n"));
        assert!(body.ends_with("--b1--\r\n"));
    }

    // What CAP answered for two changesets, the second refused: a failed
    // changeset comes back as a bare application/http part.
    const V4: &str = "--batch_1\r\ncontent-type: multipart/mixed;boundary=cs_1\r\n\r\n--cs_1\r\ncontent-type: application/http\r\ncontent-transfer-encoding: binary\r\ncontent-id: 1\r\n\r\nHTTP/1.1 201 Created\r\nodata-version: 4.0\r\nlocation: A_BusinessPartner('10')\r\netag: W/\"2026-11-25T20:11:49.095Z\"\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{\"BusinessPartner\":\"10\"}\r\n--cs_1--\r\n--batch_1\r\ncontent-type: application/http\r\ncontent-transfer-encoding: binary\r\ncontent-id: 2\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-type: application/json; charset=utf-8\r\n\r\n{\"error\":{\"code\":\"ASSERT_ENUM\"}}\r\n--batch_1--\r\n";

    #[test]
    fn answers_come_back_in_order_with_status_headers_and_body() {
        let answers = response("multipart/mixed;boundary=batch_1", V4).unwrap();
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[0].status, 201);
        assert_eq!(
            answers[0].header("Location"),
            Some("A_BusinessPartner('10')")
        );
        assert_eq!(
            answers[0].header("etag"),
            Some("W/\"2026-11-25T20:11:49.095Z\"")
        );
        assert_eq!(answers[0].body, "{\"BusinessPartner\":\"10\"}");
        assert_eq!(answers[1].status, 400);
        assert_eq!(answers[1].body, "{\"error\":{\"code\":\"ASSERT_ENUM\"}}");
    }

    #[test]
    fn unexpected_answers_are_errors_not_panics() {
        assert!(response("application/json", "{}").is_err());
        let nested = "--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                      --b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n\
                      --c\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--c--\r\n--b--\r\n--a--\r\n";
        let refused = response("multipart/mixed; boundary=a", nested).unwrap_err();
        assert!(refused.contains("deeper than 2 levels"), "{refused}");
        assert_eq!(response("multipart/mixed; boundary=x", "").unwrap(), vec![]);
        assert!(response(
            "multipart/mixed; boundary=x",
            "--x\r\n\r\nnonsense\r\n--x--"
        )
        .is_err());
        assert_eq!(boundary("multipart/mixed; boundary=\"q\""), Some("q"));
    }
}
