//! The multipart/form-data body submit sends, read back by an independent parser (multer, the
//! one axum uses): the five parts in order with the values given, the users file byte for byte,
//! and the envelope within the size budget split packs chunks by.
//!
//! The fields come from the data as the pipeline makes them: a connection id (`con_` and 16
//! letters or digits), the external id `layout::external_id` makes from a run id, and a users
//! file that is compact JSON (any bytes that parse, compacted; any others as one JSON string).
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use import_core::layout;
use import_core::multipart::{self, ImportFields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, users)) = data.split_at_checked(20) else {
        return;
    };
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let connection_id: String = "con_"
        .chars()
        .chain(
            head[..16]
                .iter()
                .map(|&b| ALNUM[usize::from(b) % ALNUM.len()] as char),
        )
        .collect();
    let seq = u32::from_le_bytes([head[16], head[17], 0, 0]);
    let upsert = head[18] & 1 == 1;
    let send_completion_email = head[18] & 2 == 2;
    let name_len = usize::from(head[19]).min(users.len());
    let (name, users) = users.split_at(name_len);
    let run_id = layout::run_id(
        &format!("inbox/{connection_id}/{}", String::from_utf8_lossy(name)),
        "etag",
    );
    let external_id = layout::external_id(&run_id, seq);
    let users_json = match serde_json::from_slice::<serde_json::Value>(users) {
        Ok(value) => serde_json::to_vec(&value).expect("a value serialises"),
        Err(_) => serde_json::to_vec(&String::from_utf8_lossy(users)).expect("a string serialises"),
    };
    let fields = ImportFields {
        connection_id: &connection_id,
        upsert,
        send_completion_email,
        external_id: &external_id,
    };
    let body = multipart::encode(&fields, &users_json);
    assert!(
        body.len() - users_json.len() <= multipart::max_envelope_bytes(),
        "the envelope is over the budget split packs chunks by"
    );

    let boundary = multer::parse_boundary(multipart::content_type()).expect("a boundary");
    let stream =
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(body))]);
    let mut form = multer::Multipart::new(stream, boundary);
    let expected: [(&str, &[u8]); 5] = [
        ("connection_id", connection_id.as_bytes()),
        ("upsert", if upsert { b"true" } else { b"false" }),
        (
            "send_completion_email",
            if send_completion_email {
                b"true"
            } else {
                b"false"
            },
        ),
        ("external_id", external_id.as_bytes()),
        ("users", &users_json),
    ];
    for (name, value) in expected {
        let field = ready(form.next_field())
            .unwrap_or_else(|e| panic!("multer refuses the body at {name}: {e}"))
            .unwrap_or_else(|| panic!("the body ends before {name}"));
        assert_eq!(field.name(), Some(name));
        let is_file = name == "users";
        assert_eq!(field.file_name(), is_file.then_some("users.json"));
        assert_eq!(
            field.content_type().map(|m| m.essence_str().to_string()),
            is_file.then(|| "application/json".to_string())
        );
        let got = ready(field.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got.as_ref() == value, "{name} reads back otherwise");
    }
    assert!(ready(form.next_field())
        .expect("the body ends cleanly")
        .is_none());
});

/// The value of a future over data already in memory, which never waits.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
    }
}
