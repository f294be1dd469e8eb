//! The exact multipart/form-data body submit sends for a chunk. Split budgets chunk sizes
//! with the same code, so "the whole request stays under Auth0's cap" is computed, not guessed.

/// Auth0 answers 413 above this many bytes of request body (facts §1.5: hapi compares the
/// request's Content-Length, i.e. the whole multipart body, with 512,000).
pub const AUTH0_MAX_REQUEST_BYTES: usize = 512_000;

/// A fixed boundary keeps the envelope's size a constant. It cannot collide with chunk content:
/// chunks are compact JSON, and a JSON text never contains CR LF outside strings nor raw
/// control characters inside them.
pub const BOUNDARY: &str = "auth0-s3-import-7d1c5e9a0b3f4a62b8e1c0d9";

/// `con_` + 16 alphanumerics (facts §1.2).
pub const CONNECTION_ID_LEN: usize = 20;
/// We cap external ids at this length (Auth0 publishes none); run id + chunk sequence fit.
pub const MAX_EXTERNAL_ID_LEN: usize = 96;

/// The non-file parts of an import request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFields<'a> {
    pub connection_id: &'a str,
    pub upsert: bool,
    pub send_completion_email: bool,
    pub external_id: &'a str,
}

pub fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Writes the request body: the text parts first, the `users` file part last (as go-auth0 does).
pub fn encode(fields: &ImportFields<'_>, users_json: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(users_json.len() + 1024);
    text_part(&mut body, "connection_id", fields.connection_id);
    text_part(&mut body, "upsert", bool_text(fields.upsert));
    text_part(
        &mut body,
        "send_completion_email",
        bool_text(fields.send_completion_email),
    );
    text_part(&mut body, "external_id", fields.external_id);
    body.extend_from_slice(b"--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(
        b"\r\nContent-Disposition: form-data; name=\"users\"; filename=\"users.json\"\r\nContent-Type: application/json\r\n\r\n",
    );
    body.extend_from_slice(users_json);
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"--\r\n");
    body
}

/// The largest envelope any chunk can get: every field at its longest allowed value.
pub fn max_envelope_bytes() -> usize {
    let longest_external_id = "x".repeat(MAX_EXTERNAL_ID_LEN);
    let longest_connection = "x".repeat(CONNECTION_ID_LEN);
    encode(
        &ImportFields {
            connection_id: &longest_connection,
            upsert: false,
            send_completion_email: false,
            external_id: &longest_external_id,
        },
        b"",
    )
    .len()
}

/// The largest users JSON that still fits one request under Auth0's cap.
pub fn max_users_json_bytes() -> usize {
    AUTH0_MAX_REQUEST_BYTES - max_envelope_bytes()
}

// Lowercase `true`/`false`, as every official SDK sends them (facts §1.2).
fn bool_text(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

fn text_part(body: &mut Vec<u8>, name: &str, value: &str) {
    body.extend_from_slice(b"--");
    body.extend_from_slice(BOUNDARY.as_bytes());
    body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(b"\"\r\n\r\n");
    body.extend_from_slice(value.as_bytes());
    body.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_chunk_with_longest_fields_fits_the_cap() {
        let users = vec![b'x'; max_users_json_bytes()];
        let body = encode(
            &ImportFields {
                connection_id: "con_ABCDEFGHIJKLMNOP",
                upsert: true,
                send_completion_email: true,
                external_id: &"r".repeat(MAX_EXTERNAL_ID_LEN),
            },
            &users,
        );
        assert!(body.len() <= AUTH0_MAX_REQUEST_BYTES, "{}", body.len());
        // The budget is tight, not padded: false is the longest boolean text.
        let body_false = encode(
            &ImportFields {
                connection_id: "con_ABCDEFGHIJKLMNOP",
                upsert: false,
                send_completion_email: false,
                external_id: &"r".repeat(MAX_EXTERNAL_ID_LEN),
            },
            &users,
        );
        assert_eq!(body_false.len(), AUTH0_MAX_REQUEST_BYTES);
    }

    #[test]
    fn body_names_every_part_once() {
        let body = encode(
            &ImportFields {
                connection_id: "con_ABCDEFGHIJKLMNOP",
                upsert: false,
                send_completion_email: false,
                external_id: "run-1:000001",
            },
            b"[]",
        );
        let text = String::from_utf8(body).unwrap();
        for name in [
            "connection_id",
            "upsert",
            "send_completion_email",
            "external_id",
            "users",
        ] {
            assert_eq!(
                text.matches(&format!("name=\"{name}\"")).count(),
                1,
                "{name}"
            );
        }
        assert!(text.ends_with(&format!("--{BOUNDARY}--\r\n")));
        assert!(text.contains("\r\n\r\n[]\r\n"));
    }
}
