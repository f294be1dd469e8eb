//! Request-body decoders the endpoints need: multipart/form-data (the import request) and
//! application/x-www-form-urlencoded (the token request). Strict: a malformed body is an error.

/// One part of a multipart/form-data body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// The body is not well-formed multipart/form-data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidMultipart;

/// The boundary parameter of a `multipart/form-data` content type, if it is one.
pub fn multipart_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let mime = params.next()?.trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

/// Splits a multipart/form-data body into its parts (RFC 7578).
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, InvalidMultipart> {
    let delimiter = format!("--{boundary}").into_bytes();
    let next_delimiter = format!("\r\n--{boundary}").into_bytes();
    // The first delimiter may follow a preamble; it must start a line.
    let first = find(body, &delimiter, 0).ok_or(InvalidMultipart)?;
    if first != 0 && !body[..first].ends_with(b"\r\n") {
        return Err(InvalidMultipart);
    }
    let mut cursor = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        let rest = &body[cursor..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return Err(InvalidMultipart);
        }
        let headers_start = cursor + 2;
        let headers_end = find(body, b"\r\n\r\n", headers_start).ok_or(InvalidMultipart)?;
        let headers =
            std::str::from_utf8(&body[headers_start..headers_end]).map_err(|_| InvalidMultipart)?;
        let content_start = headers_end + 4;
        let content_end = find(body, &next_delimiter, content_start).ok_or(InvalidMultipart)?;
        let (name, filename) = content_disposition(headers)?;
        parts.push(Part {
            name,
            filename,
            data: body[content_start..content_end].to_vec(),
        });
        cursor = content_end + next_delimiter.len();
    }
}

/// `name` and `filename` from the part's `Content-Disposition: form-data` header.
fn content_disposition(headers: &str) -> Result<(String, Option<String>), InvalidMultipart> {
    let value = headers
        .split("\r\n")
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(value.trim())
        })
        .ok_or(InvalidMultipart)?;
    let mut params = value.split(';');
    if !params
        .next()
        .is_some_and(|kind| kind.trim().eq_ignore_ascii_case("form-data"))
    {
        return Err(InvalidMultipart);
    }
    let mut name = None;
    let mut filename = None;
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Ok((name.ok_or(InvalidMultipart)?, filename))
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// Decodes `a=1&b=x%20y` into pairs (`+` is a space). Undecodable escapes are kept literally.
pub fn parse_urlencoded(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use import_core::multipart::{content_type, encode, ImportFields};

    use super::*;

    #[test]
    fn parses_the_body_submit_sends() {
        let fields = ImportFields {
            connection_id: "con_TestConnection01",
            upsert: true,
            send_completion_email: false,
            external_id: "run-1",
        };
        let body = encode(&fields, br#"[{"email":"a@example.com"}]"#);
        let boundary = multipart_boundary(&content_type()).unwrap();
        let parts = parse_multipart(&body, &boundary).unwrap();
        let names: Vec<_> = parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "connection_id",
                "upsert",
                "send_completion_email",
                "external_id",
                "users"
            ]
        );
        assert_eq!(parts[1].data, b"true");
        assert_eq!(parts[4].filename.as_deref(), Some("users.json"));
        assert_eq!(parts[4].data, br#"[{"email":"a@example.com"}]"#);
    }

    #[test]
    fn rejects_truncated_or_foreign_bodies() {
        let body = encode(
            &ImportFields {
                connection_id: "con_TestConnection01",
                upsert: false,
                send_completion_email: false,
                external_id: "",
            },
            b"[]",
        );
        let boundary = multipart_boundary(&content_type()).unwrap();
        assert_eq!(
            parse_multipart(&body[..body.len() - 30], &boundary),
            Err(InvalidMultipart)
        );
        assert_eq!(
            parse_multipart(b"{\"users\": []}", &boundary),
            Err(InvalidMultipart)
        );
        assert_eq!(multipart_boundary("application/json"), None);
    }

    #[test]
    fn decodes_form_urlencoded() {
        assert_eq!(
            parse_urlencoded(
                "grant_type=client_credentials&audience=http%3A%2F%2Fx%2Fapi%2Fv2%2F&a=b+c&bad=%zz"
            ),
            vec![
                ("grant_type".to_string(), "client_credentials".to_string()),
                ("audience".to_string(), "http://x/api/v2/".to_string()),
                ("a".to_string(), "b c".to_string()),
                ("bad".to_string(), "%zz".to_string()),
            ]
        );
    }
}
