//! Identity and profile-field rules that are not in the published schema (facts §4.2), and the
//! limits we deliberately leave to Auth0 because they are unconfirmed for import.
//!
//! Choices for unconfirmed points, all towards "do not reject what Auth0 might accept": a false
//! reject blocks a user we could have migrated, while a false accept only costs one per-user error
//! in Auth0's job report (it never fails the job, §7.3).
//! - `phone_number`: the import schema has no pattern; only Create-User validates `^\+[0-9]{1,15}$`
//!   (UNCONFIRMED for import), so any string is accepted. `mfa_factors[].phone.value`, where the
//!   schema does publish the pattern, is enforced by `schema`.
//! - Length limits of `username`, `given_name`, `family_name`, `name`, `nickname` (CONFLICT between
//!   the profile docs and Create-User, UNCONFIRMED for import, §4.2/§9.10): not enforced.
//! - `user_id`'s 255-character Create-User maximum: not enforced, for the same reason.

use super::node::Node;

use super::{code, violation, Members, Path};
use crate::violation::Violation;

/// Create-User's pattern for `user_id`, which we apply to imports (see `check_user_id`).
const USER_ID_PATTERN: &str = r"^\S*$";

/// A `user_id` Auth0 takes: not empty, no whitespace (a byte-order mark counts as one).
pub(crate) fn user_id_passes(user_id: &str) -> bool {
    let space = |c: char| c.is_whitespace() || c == '\u{FEFF}';
    !user_id.is_empty()
        && !if user_id.is_ascii() {
            // Nearly every id: a byte a character.
            user_id.bytes().any(|b| space(char::from(b)))
        } else {
            user_id.chars().any(space)
        }
}

/// An empty `user_id` or one containing whitespace is rejected with `PATTERN`. Create-User
/// enforces `^\S*$`; import is UNCONFIRMED, but such an id cannot round-trip cleanly into
/// `auth0|<id>` (URLs, log searches, the `/users/{id}` path), and an empty one is surely an export
/// bug rather than an intended id. Omitting `user_id` altogether is fine: Auth0 then generates one.
pub(crate) fn check_user_id<'v, N: Node<'v>>(record: &Members<'v, N>, out: &mut Vec<Violation>) {
    let Some(user_id) = record.get("user_id").and_then(Node::as_str) else {
        return;
    };
    let path = Path::Root.key("user_id");
    if user_id.is_empty() {
        out.push(violation(
            code::PATTERN,
            &path,
            format_args!("user_id is empty; omit the property to let Auth0 generate an id"),
        ));
    } else if !user_id_passes(user_id) {
        out.push(violation(
            code::PATTERN,
            &path,
            format_args!(
                "String does not match pattern {USER_ID_PATTERN}: user_id must not contain whitespace \
                 (check for stray spaces or line breaks from the export)"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{assert_clean, assert_finding, with};
    use super::*;

    #[test]
    fn user_id_must_be_non_empty_without_whitespace() {
        assert_clean(&with("user_id", json!("5457edea1b8f22891a000004")));
        assert_clean(&with("user_id", json!("legacy|42@db")));
        assert_finding(&with("user_id", json!("")), code::PATTERN, "user_id");
        assert_finding(&with("user_id", json!("42 ")), code::PATTERN, "user_id");
        assert_finding(&with("user_id", json!("a\tb")), code::PATTERN, "user_id");
        assert_finding(&with("user_id", json!(42)), code::INVALID_TYPE, "user_id");
    }

    #[test]
    fn phone_number_is_not_pattern_checked() {
        // Chosen reading of an UNCONFIRMED rule (see module doc): accept, leave it to Auth0.
        assert_clean(&with("phone_number", json!("+14155550100")));
        assert_clean(&with("phone_number", json!("(415) 555-0100")));
        assert_finding(
            &with("phone_number", json!(14155550100u64)),
            code::INVALID_TYPE,
            "phone_number",
        );
    }

    #[test]
    fn name_lengths_are_not_enforced() {
        assert_clean(&with("name", json!("n".repeat(400))));
        assert_clean(&with("user_id", json!("i".repeat(300))));
    }
}
